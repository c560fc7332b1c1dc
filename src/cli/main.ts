import { UsageError } from './args.js';
import { COMMANDS } from './commands.js';

function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const list = names.map((n) => `  ${n.padEnd(width)}${COMMANDS[n]?.summary}`).join('\n');
  return [
    'usage: loopvol <command> [options]',
    '',
    'commands:',
    list,
    '',
    "loopvol <command> --help shows a command's options and an example; loopvol --version the version.",
    'Exit codes: 0 done; 1 refused, failed, or the daemon could not be reached; 2 the command line is wrong.',
  ].join('\n');
}

/** The command's flags up to a `--`, after which everything is an argument. */
const flagsOf = (args: string[]) => (args.includes('--') ? args.slice(0, args.indexOf('--')) : args);

async function main(argv: string[]): Promise<void> {
  const [first, ...after] = argv;
  if (
    first === undefined ||
    first === '--help' ||
    first === '-h' ||
    (first === 'help' && after.length === 0)
  ) {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  // `loopvol help CMD` is `loopvol CMD --help`; `loopvol --version` is `loopvol version`.
  const [name, ...rest] =
    first === 'help' ? [...after, '--help'] : first === '--version' ? ['version', ...after] : argv;
  current = name;
  const entry = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) throw new UsageError(`unknown command "${name}"`);
  const command = await entry.load();
  if (flagsOf(rest).some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(`${command.help}\n`);
    return;
  }
  await command.run(rest);
}

/** The command being run, named in a usage error's pointer to its help. */
let current: string | undefined;

main(process.argv.slice(2)).catch((err: Error) => {
  // Scripts tell a wrong command line (2) from a refusal or failure (1); a wrong line gets one line
  // saying what is wrong and where the right one is, not the whole usage.
  if (err instanceof UsageError) {
    const known = current !== undefined && Object.hasOwn(COMMANDS, current);
    const help = known ? `loopvol ${current} --help` : 'loopvol --help';
    process.stderr.write(`loopvol: ${err.message} (see ${help})\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`loopvol: ${err.message}\n`);
  process.exitCode = 1;
});

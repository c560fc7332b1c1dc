import { DVDCLI_COMMAND_USAGE, dvdcliCommand } from './dvdcli.js';
import { SERVE_USAGE, serveCommand } from './serve.js';

const USAGE = `usage: loopvol <command> [options]

commands:
  serve     run the Docker volume plugin daemon
${DVDCLI_COMMAND_USAGE}

${SERVE_USAGE}`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  serve: serveCommand,
  dvdcli: dvdcliCommand,
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) throw new Error(`unknown command "${name}"\n\n${USAGE}`);
  await command(rest);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`loopvol: ${err.message}\n`);
  process.exitCode = 1;
});

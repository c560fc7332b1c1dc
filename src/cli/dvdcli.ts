import { destination, pino } from 'pino';
import { BOOLEAN_FLAGS, DVDCLI_USAGE, parseDvdcliArgs, VALUE_FLAGS } from '../dvdcli/args.js';
import { discoveryRoots } from '../dvdcli/discovery.js';
import { locatePlugin } from '../dvdcli/locate.js';
import { dockerHost } from '../dvdcli/managed.js';
import { runDvdcli, timeoutsFrom } from '../dvdcli/run.js';
import { versionText } from '../dvdcli/version.js';
import type { Options } from './args.js';

/**
 * `dvdcli` / `loopvol dvdcli`: the Mesos docker/volume isolator reads the mountpoint from stdout, so
 * stdout carries only results; logs go to stderr; any failure exits 1 with the plugin's message.
 */
export async function dvdcliCommand(argv: string[]): Promise<void> {
  if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${DVDCLI_USAGE}\n`);
    return;
  }
  const log = pino({ base: { cmd: 'dvdcli' } }, destination({ dest: 2, sync: true }));
  try {
    const args = parseDvdcliArgs(argv);
    if (args.command === 'version') {
      process.stdout.write(`${versionText(process.argv[1] ?? '')}\n`);
      return;
    }
    const timeouts = timeoutsFrom();
    const plugin = await locatePlugin(args.driver, discoveryRoots(), dockerHost(), timeouts.fastMs);
    const output = await runDvdcli(args, plugin, timeouts, log);
    if (output) process.stdout.write(`${output}\n`);
  } catch (err) {
    // One plain line: the isolator copies stderr into the task's failure message.
    process.stderr.write(`dvdcli: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}

/** dvdcli's flags in parseArgs' terms (dvdcli parses them itself, as its Go original does). */
export const DVDCLI_OPTIONS = Object.fromEntries([
  ...[...VALUE_FLAGS].map((f) => [f, { type: 'string' }]),
  ...[...BOOLEAN_FLAGS].map((f) => [f, { type: 'boolean' }]),
]) as Options;

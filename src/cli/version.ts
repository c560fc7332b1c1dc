import { buildInfo } from '../dvdcli/version.js';
import { formatHelp, noMore, parseCommandLine } from './args.js';

export const VERSION_HELP = formatHelp({
  usage: ['version', '--version'],
  about:
    "Prints loopvol's version, from its package.json (the single executable carries it from its build). Run the same version as the daemon.",
  options: [],
  example: 'loopvol --version',
});

export async function versionCommand(argv: string[]): Promise<void> {
  const { positionals } = parseCommandLine(argv, {});
  noMore(positionals, 0);
  process.stdout.write(`loopvol ${buildInfo().version}\n`);
}

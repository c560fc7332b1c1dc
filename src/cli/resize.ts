import { formatHelp, parseCommandLine, UsageError } from './args.js';
import { askDaemon, SOCKET_OPTION } from './daemon-client.js';
import { withProgress } from './progress.js';

export const RESIZE_HELP = formatHelp({
  usage: ['resize NAME SIZE [--socket PATH]'],
  about:
    'Grows volume NAME to SIZE, online when it is mounted. SIZE is 512M, 10G or 1.5T (binary units), a bare number is GiB, as for -o size. Shrinking is refused. If a resize is interrupted, running the same command again completes it.',
  options: [SOCKET_OPTION],
  notes: ['Exit codes: 0 done; 1 the daemon refused or could not be reached; 2 the command line is wrong.'],
  example: 'loopvol resize pg 20G',
});

export const RESIZE_OPTIONS = { socket: { type: 'string' } } as const;

export async function resizeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, RESIZE_OPTIONS);
  const [name, size, extra] = positionals;
  if (!name) throw new UsageError('missing the volume NAME and the new SIZE');
  if (!size) throw new UsageError('missing the new SIZE');
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  // Growing a large xfs or checking an unmounted ext4 can take minutes.
  await withProgress(`resizing ${name} to ${size}`, () =>
    askDaemon(values.socket, 'Loopvol.Resize', { Name: name, Size: size }, 900_000),
  );
  process.stdout.write(`resized ${name} to ${size}\n`);
}

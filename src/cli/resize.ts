import { parseArgs } from 'node:util';
import { askDaemon, SOCKET_HELP } from './daemon-client.js';
import { withProgress } from './progress.js';

export const RESIZE_USAGE = `usage: loopvol resize NAME SIZE [--socket PATH]

  Grows volume NAME to SIZE (same forms as -o size), online when it is mounted. Shrinking is refused.
  If a resize is interrupted, running the same command again completes it.
  ${SOCKET_HELP}`;

export async function resizeCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { socket: { type: 'string' } },
  });
  const [name, size] = positionals;
  if (!name || !size || positionals.length > 2) throw new Error(RESIZE_USAGE);
  // Growing a large xfs or checking an unmounted ext4 can take minutes.
  await withProgress(`resizing ${name} to ${size}`, () =>
    askDaemon(values.socket, 'Loopvol.Resize', { Name: name, Size: size }, 900_000),
  );
  process.stdout.write(`resized ${name} to ${size}\n`);
}

import { formatSize } from '../core/size.js';
import { parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_HELP } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';

export const SNAPSHOT_USAGE = `usage: loopvol snapshot create NAME [SNAP] [--force] [--json] [--socket PATH]
       loopvol snapshot ls NAME [--json] [--socket PATH]
       loopvol snapshot rm NAME SNAP [--socket PATH]

  create  a crash-consistent copy of volume NAME, in use or not (a mounted volume is frozen for the
          copy). SNAP defaults to the time (20261125T101500Z). A reflink where the data root's
          filesystem shares blocks (xfs, btrfs): instant; else a sparse copy, refused for a mounted
          volume when it would freeze it longer than the daemon's --max-freeze, unless --force.
  ls      the volume's snapshots: name, when, how (reflink or copy), size, allocated
  rm      deletes a snapshot (a volume with snapshots cannot be removed)
  ${SOCKET_HELP}`;

const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
} as const;

export async function snapshotCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, OPTIONS, SNAPSHOT_USAGE);
  const [action, name, snap, ...extra] = positionals;
  if (!name || extra.length > 0) throw new UsageError(SNAPSHOT_USAGE);
  if (action === 'create') {
    const { Snapshot: made } = await withProgress(`snapshotting ${name}`, () =>
      askDaemon(
        values.socket,
        'Loopvol.SnapshotCreate',
        { Name: name, Snapshot: snap, Force: values.force === true },
        3_600_000,
      ),
    );
    if (values.json) printJson(made);
    else
      process.stdout.write(`${name}@${made.name} (${made.method}${made.frozen ? ', taken frozen' : ''})\n`);
  } else if (action === 'ls' && snap === undefined) {
    const { Snapshots: snapshots } = await askDaemon(values.socket, 'Loopvol.SnapshotList', { Name: name });
    if (values.json) return printJson(snapshots);
    const table = plainTable(['SNAPSHOT', 'CREATED', 'METHOD', 'SIZE', 'ALLOCATED']);
    for (const s of snapshots)
      table.push([s.name, s.createdAt, s.method, formatSize(s.sizeBytes), formatSize(s.allocatedBytes)]);
    process.stdout.write(`${table.toString()}\n`);
  } else if (action === 'rm' && snap !== undefined) {
    await askDaemon(values.socket, 'Loopvol.SnapshotRemove', { Name: name, Snapshot: snap });
    process.stdout.write(`${name}@${snap}\n`);
  } else {
    throw new UsageError(SNAPSHOT_USAGE);
  }
}

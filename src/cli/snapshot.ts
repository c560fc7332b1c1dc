import { formatSize } from '../core/size.js';
import { formatHelp, parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_OPTION } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';

export const SNAPSHOT_HELP = formatHelp({
  usage: [
    'snapshot create NAME [SNAP] [--force] [--json] [--socket PATH]',
    'snapshot ls NAME [--json] [--socket PATH]',
    'snapshot rm NAME SNAP [--socket PATH]',
  ],
  about:
    "create: a crash-consistent copy of volume NAME, in use or not (a mounted volume is frozen for the copy); SNAP defaults to the time (20261125T101500Z). A reflink where the data root's filesystem shares blocks (xfs, btrfs) is instant; else a sparse copy, refused for a mounted volume when it would freeze it longer than the daemon's --max-freeze (seconds), unless --force. ls: the volume's snapshots: name, when, how (reflink or copy), size, allocated. rm: deletes a snapshot (a volume with snapshots cannot be removed).",
  options: [
    ['--force', 'create: copy even when the volume stays frozen longer than --max-freeze'],
    ['--json', 'print the snapshot (or the list) as JSON'],
    SOCKET_OPTION,
  ],
  example: 'loopvol snapshot create pg before-upgrade',
});

export const SNAPSHOT_OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
} as const;

export async function snapshotCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, SNAPSHOT_OPTIONS);
  const [action, name, snap, ...extra] = positionals;
  if (!['create', 'ls', 'rm'].includes(action ?? ''))
    throw new UsageError(
      action ? `unknown snapshot action "${action}"` : 'missing the action: create, ls or rm',
    );
  if (!name) throw new UsageError('missing the volume NAME');
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
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
    throw new UsageError(action === 'ls' ? `unexpected argument "${snap}"` : 'missing the snapshot SNAP');
  }
}

import pMap from 'p-map';
import { formatSize } from '../core/size.js';
import type { Volume } from '../protocol/wire.js';
import { parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_HELP } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';

export const VOLUMES_USAGE = `usage: loopvol ls [--json] [--cluster] [--socket PATH]
       loopvol inspect NAME [--json] [--socket PATH]
       loopvol create NAME [-o key=value]... [--socket PATH]
       loopvol rm NAME [--socket PATH]

  ls       one line per volume: size, used, allocated, fs, mounted, holders, mountpoint, and the
           data root's provisioned, allocated and free bytes; --json: each volume as Get answers it;
           --cluster: every volume in the cluster, its owner and its last backup (daemon run with --cluster)
  inspect  one volume's Get answer, a field a line (--json: as JSON)
  create   a volume with the same -o options as docker volume create (an existing one is left as it is)
  rm       removes a volume (refused while it is mounted)
  ${SOCKET_HELP}
  Exit codes: 0 done; 1 the daemon refused or could not be reached (its message on stderr);
  2 the command line is wrong.`;

/** Volumes fetched at once by ls: enough to hide latency, few enough not to crowd the daemon. */
const GET_CONCURRENCY = 16;

/** The flags of these commands; -o is create's. */
const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  cluster: { type: 'boolean' },
  opt: { type: 'string', short: 'o', multiple: true },
} as const;

const parse = (argv: string[]) => parseCommandLine(argv, OPTIONS, VOLUMES_USAGE);

function oneName(positionals: string[]): string {
  const [name] = positionals;
  if (name === undefined || positionals.length !== 1) throw new UsageError(VOLUMES_USAGE);
  return name;
}

const bytes = (v: number | null | undefined) => (typeof v === 'number' ? formatSize(v) : '-');

async function getVolume(socket: string | undefined, name: string): Promise<Volume> {
  return (await askDaemon(socket, 'VolumeDriver.Get', { Name: name })).Volume;
}

export async function lsCommand(argv: string[]): Promise<void> {
  const { values } = parse(argv);
  const socket = values.socket;
  if (values.cluster) return lsCluster(socket, values.json === true);
  const listed = (await askDaemon(socket, 'VolumeDriver.List', {})).Volumes;
  const volumes = await pMap(listed, (v) => getVolume(socket, v.Name), { concurrency: GET_CONCURRENCY });
  if (values.json) {
    printJson(volumes);
    return;
  }
  const table = plainTable(['NAME', 'SIZE', 'USED', 'ALLOCATED', 'FS', 'MOUNTED', 'HOLDERS', 'MOUNTPOINT']);
  for (const v of volumes) {
    const s = v.Status;
    table.push([
      v.Name,
      bytes(s.size),
      bytes(s.used),
      bytes(s.allocated),
      s.fs,
      s.mounted ? 'yes' : 'no',
      String(s.holders),
      v.Mountpoint || '-',
    ]);
  }
  process.stdout.write(`${table.toString()}\n`);
  const host = volumes.find((v) => typeof v.Status.hostFree === 'number')?.Status;
  if (host) {
    process.stdout.write(
      `data root: ${bytes(host.hostProvisioned)} provisioned, ${bytes(host.hostAllocated)} allocated, ${bytes(host.hostFree)} free\n`,
    );
  }
}

/** Every volume in the cluster with its owner, and its last backup where the repository has one. */
async function lsCluster(socket: string | undefined, json: boolean): Promise<void> {
  const volumes = (await askDaemon(socket, 'Loopvol.Cluster', {})).Volumes;
  const backups = await askDaemon(socket, 'Loopvol.Backups', {}).then(
    (reply) => reply.Backups,
    () => [],
  );
  const last = new Map(backups.map((b) => [b.volume, b]));
  const rows = volumes.map((v) => ({ ...v, lastBackup: last.get(v.name) ?? null }));
  if (json) return printJson(rows);
  const table = plainTable(['NAME', 'OWNER', 'OWNER ALIVE', 'LAST BACKUP']);
  for (const r of rows) {
    table.push([
      r.name,
      r.owner,
      r.ownerAlive ? 'yes' : 'no',
      r.lastBackup ? `${r.lastBackup.time} (${r.lastBackup.id.slice(0, 8)})` : '-',
    ]);
  }
  process.stdout.write(`${table.toString()}\n`);
}

export async function inspectCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const volume = await getVolume(values.socket, oneName(positionals));
  if (values.json) {
    printJson(volume);
    return;
  }
  const { Status, ...top } = volume;
  const lines = [...Object.entries(top), ...Object.entries(Status)].map(
    ([key, value]) => `${key}: ${value === null ? '-' : String(value)}`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function createCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const name = oneName(positionals);
  const opts = parseOpts(values.opt ?? []);
  // A large preallocated image or a pool disk can take minutes to make.
  await withProgress(`creating ${name}`, () =>
    askDaemon(values.socket, 'VolumeDriver.Create', { Name: name, Opts: opts }, 900_000),
  );
  process.stdout.write(`${name}\n`);
}

/** `-o key=value` pairs as Create's Opts. */
export function parseOpts(pairs: readonly string[]): Record<string, string> {
  const opts: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`-o "${pair}" is not key=value\n\n${VOLUMES_USAGE}`);
    opts[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return opts;
}

export async function rmCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const name = oneName(positionals);
  await askDaemon(values.socket, 'VolumeDriver.Remove', { Name: name });
  process.stdout.write(`${name}\n`);
}

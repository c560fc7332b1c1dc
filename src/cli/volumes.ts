import pMap from 'p-map';
import { optionHelp } from '../core/option-help.js';
import { formatSize } from '../core/size.js';
import type { Volume } from '../protocol/wire.js';
import { formatHelp, JSON_FLAG, noMore, parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_FLAG, SOCKET_OPTION } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';

const EXIT_CODES =
  'Exit codes: 0 done; 1 the daemon refused or could not be reached (its message on stderr); 2 the command line is wrong.';

const JSON_OPTION = ['--json', 'print JSON instead of a table'] as const;

export const LS_HELP = formatHelp({
  usage: ['ls [--json] [--cluster] [--socket PATH]'],
  about:
    "One line per volume: size, used, allocated, fs, encrypted, mounted, holders, mountpoint, then the data root's provisioned, allocated and free bytes (binary units: 1G is 1 GiB).",
  options: [
    ['--json', "each volume as the daemon's Get answers it"],
    ['--cluster', 'every volume in the cluster, its owner and its last backup (a daemon run with --cluster)'],
    SOCKET_OPTION,
  ],
  notes: [EXIT_CODES],
  example: 'loopvol ls --json',
});

export const INSPECT_HELP = formatHelp({
  usage: ['inspect NAME [--json] [--socket PATH]'],
  about: "Volume NAME's details as the daemon's Get answers them, a field a line (sizes in bytes).",
  options: [JSON_OPTION, SOCKET_OPTION],
  notes: [EXIT_CODES],
  example: 'loopvol inspect pg',
});

export const CREATE_HELP = formatHelp({
  usage: ['create NAME [-o KEY=VALUE]... [--socket PATH]'],
  about:
    'Creates volume NAME with the same options as docker volume create -d loopvol -o KEY=VALUE; an existing volume is left as it is.',
  options: [['-o KEY=VALUE', 'a Create option (below); repeat for each'], SOCKET_OPTION],
  tables: [
    { title: "-o keys (the daemon's --allow-options / --deny-options may narrow them)", rows: optionHelp() },
  ],
  notes: [EXIT_CODES],
  example: 'loopvol create pg -o size=10G -o fs=xfs',
});

export const RM_HELP = formatHelp({
  usage: ['rm NAME [--socket PATH]'],
  about: 'Removes volume NAME and its data; refused while it is mounted or has snapshots.',
  options: [SOCKET_OPTION],
  notes: [EXIT_CODES],
  example: 'loopvol rm pg',
});

/** Volumes fetched at once by ls: enough to hide latency, few enough not to crowd the daemon. */
const GET_CONCURRENCY = 16;

export const LS_OPTIONS = { ...SOCKET_FLAG, ...JSON_FLAG, cluster: { type: 'boolean' } } as const;
export const INSPECT_OPTIONS = { ...SOCKET_FLAG, ...JSON_FLAG } as const;
/** -o, as docker volume create spells it; also restore's. */
export const OPT_FLAG = { opt: { type: 'string', short: 'o', multiple: true } } as const;
export const CREATE_OPTIONS = { ...SOCKET_FLAG, ...OPT_FLAG } as const;
export const RM_OPTIONS = SOCKET_FLAG;

function oneName(positionals: string[]): string {
  const [name] = positionals;
  if (name === undefined) throw new UsageError('missing the volume NAME');
  noMore(positionals, 1);
  return name;
}

const bytes = (v: number | null | undefined) => (typeof v === 'number' ? formatSize(v) : '-');

async function getVolume(socket: string | undefined, name: string): Promise<Volume> {
  return (await askDaemon(socket, 'VolumeDriver.Get', { Name: name })).Volume;
}

export async function lsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, LS_OPTIONS);
  noMore(positionals, 0);
  const socket = values.socket;
  if (values.cluster) return lsCluster(socket, values.json === true);
  const listed = (await askDaemon(socket, 'VolumeDriver.List', {})).Volumes;
  const volumes = await pMap(listed, (v) => getVolume(socket, v.Name), { concurrency: GET_CONCURRENCY });
  if (values.json) {
    printJson(volumes);
    return;
  }
  const table = plainTable([
    'NAME',
    'SIZE',
    'USED',
    'ALLOCATED',
    'FS',
    'ENCRYPTED',
    'MOUNTED',
    'HOLDERS',
    'MOUNTPOINT',
  ]);
  for (const v of volumes) {
    const s = v.Status;
    table.push([
      v.Name,
      bytes(s.size),
      bytes(s.used),
      bytes(s.allocated),
      s.fs,
      s.encrypted ? 'yes' : 'no',
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
  const { values, positionals } = parseCommandLine(argv, INSPECT_OPTIONS);
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
  const { values, positionals } = parseCommandLine(argv, CREATE_OPTIONS);
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
    if (eq <= 0) throw new UsageError(`-o "${pair}" is not KEY=VALUE`);
    opts[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return opts;
}

export async function rmCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, RM_OPTIONS);
  const name = oneName(positionals);
  await askDaemon(values.socket, 'VolumeDriver.Remove', { Name: name });
  process.stdout.write(`${name}\n`);
}

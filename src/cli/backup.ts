import { formatSize } from '../core/size.js';
import { parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_HELP } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';
import { parseOpts } from './volumes.js';

export const BACKUP_USAGE = `usage: loopvol backup NAME [--json] [--socket PATH]
       loopvol backup verify NAME [--json] [--socket PATH]
       loopvol backups [NAME] [--json] [--socket PATH]
       loopvol restore NAME [--from ID] [-o key=value]... [--socket PATH]

  backup   backs volume NAME up to the daemon's restic repository (--backup-repo): a snapshot
           (frozen while mounted) handed to restic, tagged with the volume's name, filesystem, size
           and this host. Repeated backups are incremental (restic deduplicates). In a cluster
           only the volume's owner backs it up; each backup carries its generation (gen=N).
  backup verify
           restores the latest backup of NAME into a scratch image on the daemon's data root,
           checks its filesystem (read-only) and deletes the image; exits 1 when it is damaged
  backups  the repository's backups, of volume NAME or of every volume, from every host
  restore  creates volume NAME from its latest backup (any host's, of the newest generation), or
           from backup ID; the same as docker volume create -d loopvol -o from=backup[:ID] NAME.
           -o size= may ask for more; a backup of another name needs -o restore-other=true.
  ${SOCKET_HELP}`;

const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  from: { type: 'string' },
  opt: { type: 'string', short: 'o', multiple: true },
} as const;

const parse = (argv: string[]) => parseCommandLine(argv, OPTIONS, BACKUP_USAGE);

export async function backupCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  if (positionals[0] === 'verify' && positionals.length === 2)
    return verify(positionals[1] as string, values);
  const [name] = positionals;
  if (!name || positionals.length !== 1 || values.from || values.opt) throw new UsageError(BACKUP_USAGE);
  const { Backup: backup } = await withProgress(`backing ${name} up`, () =>
    askDaemon(values.socket, 'Loopvol.Backup', { Name: name }, 24 * 3_600_000),
  );
  if (values.json) printJson(backup);
  else process.stdout.write(`${name}: backup ${backup.id.slice(0, 8)}\n`);
}

async function verify(name: string, values: ReturnType<typeof parse>['values']): Promise<void> {
  if (values.from || values.opt) throw new UsageError(BACKUP_USAGE);
  const { Verify: report } = await withProgress(`verifying the latest backup of ${name}`, () =>
    askDaemon(values.socket, 'Loopvol.BackupVerify', { Name: name }, 24 * 3_600_000),
  );
  if (!report.ok) process.exitCode = 1;
  if (values.json) return printJson(report);
  const what = `${name}: backup ${report.backup.slice(0, 8)} of ${report.backupTime} (gen ${report.generation}, ${formatSize(report.sizeBytes)}, ${formatSize(report.restoredBytes)} restored) in ${report.seconds.toFixed(1)}s`;
  if (report.ok) process.stdout.write(`${what}: ok\n`);
  else process.stdout.write(`${what}: DAMAGED\n${report.problems.map((p) => `  ${p}`).join('\n')}\n`);
}

export async function backupsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  if (positionals.length > 1 || values.from || values.opt) throw new UsageError(BACKUP_USAGE);
  const [name] = positionals;
  const { Backups: backups } = await askDaemon(values.socket, 'Loopvol.Backups', name ? { Name: name } : {});
  if (values.json) return printJson(backups);
  const table = plainTable(['ID', 'TIME', 'VOLUME', 'GEN', 'FS', 'SIZE', 'HOST']);
  for (const b of backups)
    table.push([
      b.id.slice(0, 8),
      b.time,
      b.volume,
      String(b.generation),
      b.fs,
      formatSize(b.sizeBytes),
      b.host,
    ]);
  process.stdout.write(`${table.toString()}\n`);
}

export async function restoreCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const [name] = positionals;
  if (!name || positionals.length !== 1) throw new UsageError(BACKUP_USAGE);
  const opts = { ...parseOpts(values.opt ?? []), from: values.from ? `backup:${values.from}` : 'backup' };
  await withProgress(`restoring ${name}`, () =>
    askDaemon(values.socket, 'VolumeDriver.Create', { Name: name, Opts: opts }, 24 * 3_600_000),
  );
  process.stdout.write(`${name}\n`);
}

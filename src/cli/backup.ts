import { formatSize } from '../core/size.js';
import { formatHelp, JSON_FLAG, noMore, parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_FLAG, SOCKET_OPTION } from './daemon-client.js';
import { withProgress } from './progress.js';
import { plainTable } from './table.js';
import { OPT_FLAG, parseOpts } from './volumes.js';

export const BACKUP_HELP = formatHelp({
  usage: ['backup NAME [--json] [--socket PATH]', 'backup verify NAME [--json] [--socket PATH]'],
  about:
    "backup NAME backs volume NAME up to the daemon's restic repository (--backup-repo): a snapshot (frozen while mounted) handed to restic, tagged with the volume's name, filesystem, size and this host. Repeated backups are incremental. In a cluster only the volume's owner backs it up; each backup carries its generation (gen=N). backup verify NAME restores the latest backup of NAME into a scratch image on the daemon's data root, checks its filesystem read-only and deletes the image.",
  options: [['--json', 'print the backup (or the check) as JSON'], SOCKET_OPTION],
  notes: [
    'Exit codes: 0 done; 1 refused, unreachable, or (verify) the backup is damaged; 2 the command line is wrong.',
  ],
  example: 'loopvol backup verify pg',
});

export const BACKUPS_HELP = formatHelp({
  usage: ['backups [NAME] [--json] [--socket PATH]'],
  about:
    "The repository's backups, of volume NAME or of every volume, from every host (sizes in binary units).",
  options: [['--json', 'print them as JSON'], SOCKET_OPTION],
  example: 'loopvol backups pg',
});

export const RESTORE_HELP = formatHelp({
  usage: ['restore NAME [--from ID] [-o KEY=VALUE]... [--socket PATH]'],
  about:
    "Creates volume NAME from its latest backup (any host's, of the newest generation), or from backup ID: the same as docker volume create -d loopvol -o from=backup[:ID] NAME.",
  options: [
    ['--from ID', 'the backup to restore (an ID from loopvol backups); default the latest'],
    [
      '-o KEY=VALUE',
      'a Create option, as for loopvol create: size= may ask for more (a bare number is GiB); a backup of another name needs restore-other=true',
    ],
    SOCKET_OPTION,
  ],
  example: 'loopvol restore pg --from 1a2b3c4d -o size=20G',
});

export const BACKUP_OPTIONS = { ...SOCKET_FLAG, ...JSON_FLAG } as const;
export const BACKUPS_OPTIONS = BACKUP_OPTIONS;
export const RESTORE_OPTIONS = { ...SOCKET_FLAG, ...OPT_FLAG, from: { type: 'string' } } as const;

export async function backupCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, BACKUP_OPTIONS);
  if (positionals[0] === 'verify') {
    if (positionals[1] === undefined) throw new UsageError('missing the volume NAME to verify');
    noMore(positionals, 2);
    return verify(positionals[1], values);
  }
  const [name] = positionals;
  if (!name) throw new UsageError('missing the volume NAME');
  noMore(positionals, 1);
  const { Backup: backup } = await withProgress(`backing ${name} up`, () =>
    askDaemon(values.socket, 'Loopvol.Backup', { Name: name }, 24 * 3_600_000),
  );
  if (values.json) printJson(backup);
  else process.stdout.write(`${name}: backup ${backup.id.slice(0, 8)}\n`);
}

async function verify(name: string, values: { socket?: string; json?: boolean }): Promise<void> {
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
  const { values, positionals } = parseCommandLine(argv, BACKUPS_OPTIONS);
  noMore(positionals, 1);
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
  const { values, positionals } = parseCommandLine(argv, RESTORE_OPTIONS);
  const [name] = positionals;
  if (!name) throw new UsageError('missing the volume NAME');
  noMore(positionals, 1);
  const opts = { ...parseOpts(values.opt ?? []), from: values.from ? `backup:${values.from}` : 'backup' };
  await withProgress(`restoring ${name}`, () =>
    askDaemon(values.socket, 'VolumeDriver.Create', { Name: name, Opts: opts }, 24 * 3_600_000),
  );
  process.stdout.write(`${name}\n`);
}

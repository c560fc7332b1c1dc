import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { runTool, type ToolResult } from './exec.js';

/**
 * A restic repository loopvol backs volumes up to. The operator makes it (`restic init`); loopvol
 * never does. restic's own environment (RESTIC_*, AWS_*, B2_*, ... for cloud repositories) passes
 * through from the daemon's; nothing of it is logged.
 */
export interface ResticRepo {
  repository: string;
  passwordFile: string;
}

/** One backup in the repository, as restic lists it. */
export interface ResticSnapshot {
  id: string;
  short_id: string;
  time: string;
  hostname: string;
  tags?: string[];
}

/** A restic failure, worded from its stderr (which never holds the password file's password). */
export class ResticError extends Error {}

/**
 * Hides the password of every URL with credentials in `text` (`rest:https://user:pass@host/`,
 * `s3:https://key:secret@host/bucket`, `sftp:user:pass@host:/path`), keeping the user, so that a
 * repository can be named in logs and errors. Some restic versions print the URL as given.
 */
export function redactCredentials(text: string): string {
  return text.replace(/([A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?[^\s:@/]+):[^\s@/]+@/g, '$1:***@');
}

const BACKUP_TIMEOUT_MS = 24 * 3_600_000;
/** restic stops cleanly (its lock removed from the repository) on SIGINT; SIGKILL a second later. */
const STOP_BACKUP = { signal: 'SIGINT', graceMs: 1_000 } as const;

function args(repo: ResticRepo, command: string[]): string[] {
  return ['--repo', repo.repository, '--password-file', repo.passwordFile, '--no-cache', ...command];
}

function explain(what: string, r: ToolResult): ResticError {
  const detail = r.stderr.split('\n').filter(Boolean).slice(-3).join('; ') || `exit ${r.exitCode}`;
  const hint = /wrong password|no key found/i.test(detail)
    ? ': the password file does not open this repository'
    : /does not exist|unable to open config|Is there a repository/i.test(detail)
      ? ': no repository there (the operator creates it with restic init)'
      : '';
  return new ResticError(redactCredentials(`restic ${what} failed${hint} (${detail})`));
}

async function restic(
  repo: ResticRepo,
  what: string,
  command: string[],
  timeoutMs = 120_000,
): Promise<string> {
  // A timeout or a restic that cannot start: the error names the command line, repository included.
  const r = await runTool('restic', args(repo, command), { timeoutMs }).catch((err: Error) => {
    throw new ResticError(redactCredentials(`restic ${what} failed: ${err.message}`));
  });
  if (r.exitCode !== 0) throw explain(what, r);
  return r.stdout;
}

/** Checks that the repository exists and the password opens it (cheap: reads its config). */
export async function checkRepository(repo: ResticRepo): Promise<void> {
  await restic(repo, 'check of the repository', ['cat', 'config']);
}

/** What `restic backup --json` reports at its end. */
export interface BackupSummary {
  snapshot_id: string;
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  /** Bytes the backup added to the repository (new data after deduplication, before compression). */
  data_added: number;
  /** Bytes of every file the backup covered, read or skipped as unchanged. */
  total_bytes_processed: number;
}

/**
 * Backs directory `dir` up as the top-level entry of the snapshot, named by its base name, so
 * a restore can put it (and the directory's own owner, mode and xattrs) anywhere. Files whose
 * size, mtime, ctime and inode match the parent's (the newest backup of `dir` by `host`) are
 * taken as unchanged, unread. A timeout throws ToolTimedOut.
 */
export async function backupDirectory(
  repo: ResticRepo,
  dir: string,
  tags: string[],
  host: string,
  timeoutMs = BACKUP_TIMEOUT_MS,
): Promise<BackupSummary> {
  const command = ['backup', '--json', '--host', host, ...tags.flatMap((t) => ['--tag', t])];
  const r = await runTool('restic', args(repo, [...command, '--', basename(dir)]), {
    timeoutMs,
    cwd: dirname(dir),
    stop: STOP_BACKUP,
  });
  if (r.exitCode !== 0) throw explain('backup', r);
  const summary = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Partial<BackupSummary> & { message_type?: string })
    .find((m) => m.message_type === 'summary');
  if (!summary?.snapshot_id) throw new ResticError('restic backup printed no snapshot id');
  return summary as BackupSummary;
}

/**
 * Restores the top-level entry `top` of snapshot `id` as `target`/`top`. Nothing else the snapshot
 * may hold is written: a backup's content is not trusted to stay where it was meant to go.
 */
export async function restoreSnapshot(
  repo: ResticRepo,
  id: string,
  top: string,
  target: string,
): Promise<void> {
  await restic(
    repo,
    'restore',
    ['restore', id, '--target', target, '--include', `/${top}`],
    BACKUP_TIMEOUT_MS,
  );
}

/**
 * Backups carrying every one of `tags`, oldest first. Without a lock: a listing only reads, and
 * restic's lock (written, then checked against the others) cost 0.45 of its 0.68 s here, which
 * every backup pays once more to learn its new backup's full id. A forget that another agent runs
 * meanwhile can at worst fail this listing or show a backup it is removing; it changes no backup.
 */
export async function listSnapshots(repo: ResticRepo, tags: string[]): Promise<ResticSnapshot[]> {
  const out = await restic(repo, 'listing of backups', [
    '--no-lock',
    'snapshots',
    '--json',
    '--tag',
    tags.join(','),
  ]);
  return JSON.parse(out || '[]') as ResticSnapshot[];
}

/** restic's repository kinds other than a local directory (`scheme:...`). */
const REMOTE_SCHEMES = /^(sftp|rest|s3|swift|b2|azure|gs|rclone):/;

/**
 * The full id of the backup whose short id `restic backup --json` reported (restic 0.14 prints
 * only the short one), when the repository is a local directory: its `snapshots/` directory names
 * each backup by its full id. Undefined for other repositories, or when the prefix is not unique:
 * then a listing tells, at the cost of one more restic process (key derivation, ~0.4 s here).
 */
export async function localSnapshotId(repo: ResticRepo, short: string): Promise<string | undefined> {
  if (REMOTE_SCHEMES.test(repo.repository)) return undefined;
  const dir = join(repo.repository.replace(/^local:/, ''), 'snapshots');
  const found = await readdir(dir).catch(() => [] as string[]);
  const matching = found.filter((id) => id.startsWith(short) && /^[0-9a-f]{64}$/.test(id));
  return matching.length === 1 ? matching[0] : undefined;
}

/** Forgets the backups `ids` and prunes what only they used from the repository. */
export async function forgetSnapshots(repo: ResticRepo, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await restic(repo, 'pruning of old backups', ['forget', '--prune', '--', ...ids], BACKUP_TIMEOUT_MS);
}

/** Streams the file `name` of backup `id` to stdout of a restic process, for the caller to write. */
export function dumpFile(repo: ResticRepo, id: string, name: string) {
  return spawn('restic', args(repo, ['dump', id, name]), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
}

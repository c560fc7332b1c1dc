import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Copied, ImageSource } from '../core/clone.js';
import { VolumeError, wrap } from '../core/errors.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { LATEST_BACKUP } from '../core/options.js';
import type { Snapshots } from '../snapshot/snapshots.js';
import { writeFileAtomic } from '../state/atomic.js';
import type { Store } from '../state/store.js';
import { filesystemUuid } from '../system/fs-uuid.js';
import { checkFilesystem } from '../system/fsck.js';
import { fileSpace } from '../system/fsstat.js';
import type { FsType } from '../system/mount.js';
import {
  checkRepository,
  dumpFile,
  forgetSnapshots,
  listSnapshots,
  type ResticRepo,
  type ResticSnapshot,
  redactCredentials,
} from '../system/restic.js';
import { writeSparse } from '../system/sparse-write.js';
import type { Maintained, VolumeService } from '../volume/service.js';
import { type FileBackups, FreezeTooLong } from './file-backup.js';
import { newestFirst, toForget } from './retention.js';

/** How backups are made; from the daemon's flags. */
export interface BackupOptions {
  repo: ResticRepo;
  /** Backups kept per volume; 0 keeps all (DEFAULT_SCHEDULED_KEEP for scheduled backups). */
  keep: number;
  /** The host name recorded with each backup; default the host's name. */
  host?: string;
}

/** One backup as `loopvol backups` lists it. */
export interface BackupInfo {
  id: string;
  time: string;
  host: string;
  volume: string;
  fs: string;
  sizeBytes: number;
  /** The ownership generation it was made in (see ClusterGuard.assertOwner; 0 without a cluster). */
  generation: number;
  /** `files`: the filesystem's files (FileBackups); `image`: the whole image (older backups). */
  format: 'files' | 'image';
}

/** What `loopvol backup verify` found: the newest backup restored into a scratch image and checked. */
export interface VerifyReport {
  volume: string;
  backup: string;
  backupTime: string;
  generation: number;
  ok: boolean;
  /** Why not: the restore's error or the filesystem checker's lines. */
  problems: string[];
  /** The volume's size, and what its restored image occupied. */
  sizeBytes: number;
  restoredBytes: number;
  seconds: number;
  /** When the check ended. */
  time: string;
}

/** The last check of a volume's backups, for Status; `backup` is absent when none could be chosen. */
export interface VerifyStatus {
  time: string;
  backup?: string;
  ok: boolean;
  problem?: string;
}

/**
 * The last backup of a volume that worked, the last that failed and the last check of its
 * backups (volumes/<name>/backup.json).
 */
export interface BackupStatus {
  lastSuccess?: { time: string; id: string; generation: number };
  lastFailure?: { time: string; error: string };
  lastVerify?: VerifyStatus;
  /** The last check that passed (the metric alerting rules watch). */
  lastVerifySuccess?: { time: string; backup: string };
}

/**
 * Backups kept of a volume with scheduled backups (`-o backup=`) when --backup-keep is 0: a
 * schedule runs unattended, so without a bound its backups, and the index every restic command
 * reads, grow for ever. 24 is a day of hourly backups; --backup-keep overrides it.
 */
export const DEFAULT_SCHEDULED_KEEP = 24;

/** Tags a backup carries: restic finds a volume's backups by them, from any host. */
const TAG = 'loopvol';
const tagsOf = (volume: string) => [TAG, `volume=${volume}`];
/** A backup of the volume's files; a backup without it holds the whole image as one file. */
const FILES_FORMAT = 'format=files';
const tagValue = (s: ResticSnapshot, key: string) =>
  s.tags?.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
/** The generation a backup's `gen=` tag holds; 0 for backups from before generations, or a bad tag. */
const generationOf = (s: ResticSnapshot) => {
  const gen = Number(tagValue(s, 'gen'));
  return Number.isSafeInteger(gen) && gen >= 0 ? gen : 0;
};
/** The path a volume's image has inside its backups. */
const fileOf = (volume: string) => `/${volume}.img`;
const STATUS_FILE = 'backup.json';
/** How often the scheduler looks for volumes due a backup. */
const SCHEDULER_TICK_MS = 2_000;

/**
 * Backups of volumes to a restic repository, and restores from them. A backup copies the volume
 * as a snapshot would (frozen while mounted, under its lock, so its Mounts wait only for that) and
 * hands the copy to restic outside the lock; restic's deduplication makes repeated backups
 * incremental. One backup runs at a time. In a cluster only the volume's owner backs it up, and
 * each backup carries the owner's generation: restores and retention prefer the latest generation,
 * so a stale copy's backups never win over the owner's.
 */
export class Backups {
  private readonly one = new KeyedLock();
  private readonly statuses = new Map<string, BackupStatus>();
  private readonly host: string;
  /** When the scheduler last started each work (`backup:NAME`, `verify:NAME`), this process's life. */
  private readonly attempted = new Map<string, number>();
  private ticking = false;

  constructor(
    private readonly store: Store,
    private readonly service: VolumeService,
    private readonly snapshots: Snapshots,
    private readonly options: BackupOptions,
    private readonly files: FileBackups,
  ) {
    this.host = options.host ?? hostname();
  }

  /** At start: a repository that cannot be opened is a warning; volumes are served regardless. */
  async checkAtStart(log: Logger): Promise<void> {
    const repository = redactCredentials(this.options.repo.repository);
    try {
      await checkRepository(this.options.repo);
      log.info({ repository }, 'backup repository ready');
    } catch (err) {
      log.warn(
        { repository, err: (err as Error).message },
        'backup repository unusable: backups and restores fail until it is fixed (create it with restic init)',
      );
    }
  }

  async backup(name: string, log: Logger): Promise<BackupInfo> {
    return this.one.run('backup', async () => {
      const started = Date.now();
      try {
        // Asked of the cluster just before the copy: only the owner backs up, tagged with its token.
        const generation = (await this.service.cluster?.assertOwner(name, log)) ?? 0;
        const backing = ({ record }: Maintained) => {
          const { fs, sizeBytes } = record.spec;
          const tags = [...tagsOf(name), `fs=${fs}`, `size=${sizeBytes}`, `gen=${generation}`, FILES_FORMAT];
          return { tags, host: this.host };
        };
        // A mounted volume is read where it is, frozen; a copy if that takes longer than a freeze may.
        const live = await this.snapshots
          .withFrozen(name, log, ({ mountPoint, device, withinMs }, volume) =>
            this.files.backupLive(mountPoint, device, name, backing(volume), withinMs, log),
          )
          .catch((err: Error) => {
            if (!(err instanceof FreezeTooLong)) throw err;
            log.warn({ reason: err.message }, 'backing the volume up from a copy instead');
            return undefined;
          });
        const { snapshot_id: short } =
          live?.result ??
          (await this.snapshots.withCopy(name, log, (image, volume) =>
            this.files.backup(image, volume.record.spec.fs, name, backing(volume), log),
          ));
        // restic's summary names the backup by its short id; list it for the full one.
        const info = (await this.list(name)).find((b) => b.id.startsWith(short));
        if (!info) throw new VolumeError(`restic reported backup ${short}, but it is not in the repository`);
        await this.prune(name, generation, log);
        await this.record(name, { lastSuccess: { time: info.time, id: info.id, generation } });
        log.info({ backup: info.id, generation, ms: Date.now() - started }, 'volume backed up');
        return info;
      } catch (err) {
        const error = (err as Error).message;
        if (this.service.has(name)) {
          await this.record(name, { lastFailure: { time: new Date().toISOString(), error } }).catch(
            () => undefined,
          );
        }
        log.error({ err: error }, 'backup failed');
        throw err instanceof VolumeError ? err : wrap(err, `cannot back volume ${name} up`);
      }
    });
  }

  /**
   * Retention after a backup made in `generation` (see toForget). The backup is made whatever
   * happens here: a failed prune (another agent's backup holds the repository's lock) is a
   * warning, and the next backup prunes what this one left.
   */
  private async prune(name: string, generation: number, log: Logger): Promise<void> {
    const keep = this.keepOf(name);
    if (keep === 0) return;
    try {
      const old = toForget(await this.list(name), name, generation, keep);
      await forgetSnapshots(
        this.options.repo,
        old.map((b) => b.id),
      );
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        'backup made, but pruning older backups failed: the next backup retries',
      );
    }
  }

  /** Backups kept of a volume: --backup-keep, else DEFAULT_SCHEDULED_KEEP if it has a schedule. */
  private keepOf(name: string): number {
    if (this.options.keep > 0) return this.options.keep;
    return this.service.specOf(name)?.backupEverySeconds ? DEFAULT_SCHEDULED_KEEP : 0;
  }

  /**
   * Restores the newest backup of `name` (of the newest generation) into a scratch image under
   * the data root, checks its filesystem read-only and deletes the image whatever happens. Throws
   * only when no backup can be chosen; a backup that does not restore or check clean is a report
   * with ok false. The outcome goes to the volume's Status when the volume is here.
   */
  async verify(name: string, log: Logger): Promise<VerifyReport> {
    return this.one.run('verify', async () => {
      try {
        const report = await this.verifyLatest(name);
        const { time, backup, ok, problems } = report;
        await this.noteVerify(
          name,
          ok
            ? { lastVerify: { time, backup, ok }, lastVerifySuccess: { time, backup } }
            : { lastVerify: { time, backup, ok, problem: problems.slice(0, 3).join('; ') } },
          log,
        );
        if (ok)
          log.info({ backup, seconds: report.seconds }, 'backup verified: it restores and checks clean');
        else
          log.error(
            { backup, problems },
            'backup verification failed: this backup would not restore cleanly',
          );
        return report;
      } catch (err) {
        const problem = (err as Error).message;
        await this.noteVerify(
          name,
          { lastVerify: { time: new Date().toISOString(), ok: false, problem } },
          log,
        );
        log.error({ err: problem }, 'backup verification failed');
        throw err;
      }
    });
  }

  private async verifyLatest(name: string): Promise<VerifyReport> {
    const started = Date.now();
    const chosen = await this.choose(name, LATEST_BACKUP, false);
    // A staging directory: invisible to List, and start-up or gc deletes it after a crash.
    const scratch = await this.store.stage();
    let problems: string[] = [];
    let restoredBytes = 0;
    try {
      await this.dump(chosen, scratch.image);
      restoredBytes = fileSpace(scratch.image).allocatedBytes;
      const check = await checkFilesystem(scratch.image, chosen.fs as FsType, false);
      if (!check.clean) problems = [`${check.command} exited ${check.exitCode}`, ...check.output];
    } catch (err) {
      problems = [(err as Error).message];
    } finally {
      await this.store.discardStaged(scratch);
    }
    return {
      volume: name,
      backup: chosen.id,
      backupTime: chosen.time,
      generation: chosen.generation,
      ok: problems.length === 0,
      problems,
      sizeBytes: chosen.sizeBytes,
      restoredBytes,
      seconds: (Date.now() - started) / 1000,
      time: new Date().toISOString(),
    };
  }

  /** Records a verification in the volume's Status when the volume is here; never fails the check. */
  private async noteVerify(name: string, change: BackupStatus, log: Logger): Promise<void> {
    if (!this.service.has(name)) return;
    await this.record(name, change).catch((err: Error) =>
      log.warn({ err: err.message }, 'could not record the verification in the volume status'),
    );
  }

  /**
   * Runs the backups and checks volumes asked for with `-o backup=INTERVAL` and
   * `-o backup-verify=INTERVAL`, one at a time: each is due when its last success (or, failing,
   * its last attempt) is an interval old; one never done is due at once. A volume's backup runs
   * before its check, so the check sees it.
   */
  schedule(log: Logger): void {
    const timer = setInterval(() => void this.runDue(log), SCHEDULER_TICK_MS);
    timer.unref();
  }

  private async runDue(log: Logger): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const name of this.service.names()) {
        const spec = this.service.specOf(name);
        const scheduled = log.child({ volume: name, scheduled: true });
        if (this.due(`backup:${name}`, spec?.backupEverySeconds, this.status(name).lastSuccess?.time))
          await this.backup(name, scheduled).catch(() => undefined);
        if (this.due(`verify:${name}`, spec?.verifyEverySeconds, this.status(name).lastVerify?.time))
          await this.verify(name, scheduled).catch(() => undefined);
      }
    } finally {
      this.ticking = false;
    }
  }

  /** Whether scheduled work (every `every` seconds, last done at `last`) is due; if so, marks it started. */
  private due(work: string, every: number | undefined, last: string | undefined): boolean {
    if (!every) return false;
    const since = Math.max(Date.parse(last ?? '') || 0, this.attempted.get(work) ?? 0);
    if (Date.now() - since < every * 1000) return false;
    this.attempted.set(work, Date.now());
    return true;
  }

  /** Backups of one volume, or of every volume, oldest first. */
  async list(name?: string): Promise<BackupInfo[]> {
    try {
      const found = await listSnapshots(this.options.repo, name ? tagsOf(name) : [TAG]);
      return found.map((s) => ({
        id: s.id,
        time: s.time,
        host: s.hostname,
        volume: tagValue(s, 'volume') ?? '',
        fs: tagValue(s, 'fs') ?? '',
        sizeBytes: Number(tagValue(s, 'size') ?? 0),
        generation: generationOf(s),
        format: s.tags?.includes(FILES_FORMAT) ? 'files' : 'image',
      }));
    } catch (err) {
      throw new VolumeError((err as Error).message);
    }
  }

  /** The last success and failure of a volume's backups, for Status. */
  status(name: string): BackupStatus {
    return this.statuses.get(name) ?? this.load(name);
  }

  /**
   * The restore behind `-o from=backup[:ID]`: backup ID, or the latest backup of a volume named
   * `name` (from any host, of the newest generation), written sparse into the new image. A backup
   * of another name only with `restoreOther` (`-o restore-other=true`).
   */
  sourceOf(name: string, backup: string, restoreOther: boolean): ImageSource {
    return async (dest) => {
      const chosen = await this.choose(name, backup, restoreOther);
      await this.dump(chosen, dest);
      const restored = { keepUuid: !this.uuidInUse(dest, chosen.fs as FsType) };
      return { fs: chosen.fs as FsType, sizeBytes: chosen.sizeBytes, restored } satisfies Copied;
    };
  }

  /** The size of the volume a restore brings back (for the space guard). */
  async sizeOf(name: string, backup: string, restoreOther: boolean): Promise<number> {
    return (await this.choose(name, backup, restoreOther)).sizeBytes;
  }

  /**
   * Backup `backup` (an id or its prefix), or the latest of a volume named `name`: the newest of
   * the newest generation, not simply the newest in time (a stale copy may have backed up late).
   */
  private async choose(name: string, backup: string, restoreOther: boolean): Promise<BackupInfo> {
    const latest = backup === LATEST_BACKUP;
    const candidates = await this.list(latest ? name : undefined);
    const chosen = latest ? candidates.sort(newestFirst)[0] : candidates.find((b) => b.id.startsWith(backup));
    if (chosen && chosen.volume !== name && !restoreOther) {
      throw new VolumeError(
        `backup ${chosen.id.slice(0, 8)} is of volume ${chosen.volume}, not ${name}: add -o restore-other=true to restore another volume's backup under this name`,
        'invalid',
      );
    }
    if (chosen) return chosen;
    throw new VolumeError(
      latest
        ? `there is no backup of a volume named ${name} in the repository: see "loopvol backups"`
        : `there is no backup ${backup} in the repository: see "loopvol backups"`,
      'not-found',
    );
  }

  /**
   * Makes a backup's image at `dest`: formatted and filled with its files, or its whole image
   * written sparse (no longer than its recorded size); nothing is left at `dest` when it fails.
   * Restores and verify both turn a chosen backup into an image here, and only here.
   */
  private async dump(backup: BackupInfo, dest: string): Promise<void> {
    if (backup.format === 'files') return this.files.restore(backup, dest);
    const dump = dumpFile(this.options.repo, backup.id, fileOf(backup.volume));
    let stderr = '';
    dump.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number>((resolve) => dump.on('close', (code) => resolve(code ?? -1)));
    let failure: unknown;
    try {
      await writeSparse(dump.stdout, dest, backup.sizeBytes);
    } catch (err) {
      failure = err;
    }
    const code = await exited;
    if (code !== 0 || failure) {
      await rm(dest, { force: true });
      const context = `cannot restore backup ${backup.id}`;
      if (failure) throw wrap(failure, context);
      throw new VolumeError(`${context}: ${redactCredentials(stderr.trim().split('\n').at(-1) ?? '')}`);
    }
  }

  /** Whether a local volume's filesystem has the UUID of the `fs` image at `image` (superblock reads). */
  private uuidInUse(image: string, fs: FsType): boolean {
    const uuid = filesystemUuid(image, fs);
    if (uuid === undefined) return false;
    return this.service.names().some((name) => {
      if (this.service.specOf(name)?.fs !== fs) return false;
      try {
        return filesystemUuid(this.store.layout.volume(name).image, fs) === uuid;
      } catch {
        return false;
      }
    });
  }

  private load(name: string): BackupStatus {
    try {
      const status = JSON.parse(readFileSync(join(this.store.layout.volume(name).dir, STATUS_FILE), 'utf8'));
      this.statuses.set(name, status);
      return status;
    } catch {
      return {};
    }
  }

  private async record(name: string, change: BackupStatus): Promise<void> {
    const next = { ...this.status(name), ...change };
    this.statuses.set(name, next);
    await writeFileAtomic(join(this.store.layout.volume(name).dir, STATUS_FILE), JSON.stringify(next));
  }
}

import type { Logger } from 'pino';
import { VolumeError, wrap } from '../core/errors.js';
import type { FsType } from '../core/fs-type.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { LATEST_BACKUP } from '../core/options.js';
import { checkFilesystem } from '../system/fsck.js';
import { fileSpace } from '../system/fsstat.js';
import {
  checkRepository,
  forgetSnapshots,
  localSnapshotId,
  type ResticSnapshot,
  redactCredentials,
} from '../system/restic.js';
import type { Maintained } from '../volume/port.js';
import { FreezeTooLong } from './file-backup.js';
import { backupImage, encryptionTags } from './image-backup.js';
import {
  type BackupInfo,
  BackupRepository,
  type BackupStatus,
  FILES_FORMAT,
  infoOf,
  tagsOf,
} from './repository.js';
import { toForget } from './retention.js';

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

/**
 * Backups kept of a volume with scheduled backups (`-o backup=`) when --backup-keep is 0: a
 * schedule runs unattended, so without a bound its backups, and the index every restic command
 * reads, grow for ever. 24 is a day of hourly backups; --backup-keep overrides it.
 */
export const DEFAULT_SCHEDULED_KEEP = 24;

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
export class Backups extends BackupRepository {
  private readonly one = new KeyedLock();
  /** When the scheduler last started each work (`backup:NAME`, `verify:NAME`), this process's life. */
  private readonly attempted = new Map<string, number>();
  private ticking = false;

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
        const generation = (await this.options.cluster?.assertOwner(name, log)) ?? 0;
        /** What restic is given, as it will list it (time: when restic starts, by this clock). */
        let made: Omit<ResticSnapshot, 'id' | 'short_id'> | undefined;
        const backing = ({ record }: Maintained) => {
          const { fs, sizeBytes } = record.spec;
          const format = record.encryption ? encryptionTags(record.encryption) : [FILES_FORMAT];
          const tags = [...tagsOf(name), `fs=${fs}`, `size=${sizeBytes}`, `gen=${generation}`, ...format];
          made = { tags, hostname: this.host, time: new Date().toISOString() };
          return { tags, host: this.host };
        };
        // A mounted volume is read where it is, frozen; a copy if that takes longer than a freeze may.
        // An encrypted volume is backed up as its image, from a copy: its files would be read in plain text.
        const encrypted = this.service.specOf(name)?.encrypt === true;
        const live = encrypted
          ? undefined
          : await this.snapshots
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
            volume.record.encryption
              ? backupImage(this.options.repo, image, name, backing(volume))
              : this.files.backup(image, volume.record.spec.fs, name, backing(volume), log),
          ));
        // restic's summary names the backup by its short id: the full one from the repository's
        // directory if it is local, else from a listing.
        const id = await localSnapshotId(this.options.repo, short);
        const info =
          id && made
            ? infoOf({ id, short_id: short, ...made })
            : (await this.list(name)).find((b) => b.id.startsWith(short));
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
}

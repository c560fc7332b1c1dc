import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Copied, ImageSource } from '../core/clone.js';
import { VolumeError } from '../core/errors.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { LATEST_BACKUP } from '../core/options.js';
import type { Snapshots } from '../snapshot/snapshots.js';
import { writeFileAtomic } from '../state/atomic.js';
import type { Store } from '../state/store.js';
import { filesystemUuid } from '../system/fs-uuid.js';
import type { FsType } from '../system/mount.js';
import {
  checkRepository,
  dumpFile,
  forgetOlder,
  listSnapshots,
  type ResticRepo,
  type ResticSnapshot,
} from '../system/restic.js';
import { writeSparse } from '../system/sparse-write.js';
import type { VolumeService } from '../volume/service.js';
import type { FileBackups } from './file-backup.js';

/** How backups are made; from the daemon's flags. */
export interface BackupOptions {
  repo: ResticRepo;
  /** Backups kept per volume; 0 keeps all. */
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
  /** `files`: the filesystem's files (FileBackups); `image`: the whole image (older backups). */
  format: 'files' | 'image';
}

/** The last backup of a volume that worked and the last that failed (volumes/<name>/backup.json). */
export interface BackupStatus {
  lastSuccess?: { time: string; id: string };
  lastFailure?: { time: string; error: string };
}

/** Tags a backup carries: restic finds a volume's backups by them, from any host. */
const TAG = 'loopvol';
const tagsOf = (volume: string) => [TAG, `volume=${volume}`];
/** A backup of the volume's files; a backup without it holds the whole image as one file. */
const FILES_FORMAT = 'format=files';
const tagValue = (s: ResticSnapshot, key: string) =>
  s.tags?.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
/** The path a volume's image has inside its backups. */
const fileOf = (volume: string) => `/${volume}.img`;
const STATUS_FILE = 'backup.json';
/** How often the scheduler looks for volumes due a backup. */
const SCHEDULER_TICK_MS = 2_000;

/**
 * Backups of volumes to a restic repository, and restores from them. A backup copies the volume
 * as a snapshot would (frozen while mounted, under its lock, so its Mounts wait only for that) and
 * hands the copy to restic outside the lock; restic's deduplication makes repeated backups
 * incremental. One backup runs at a time.
 */
export class Backups {
  private readonly one = new KeyedLock();
  private readonly statuses = new Map<string, BackupStatus>();
  private readonly host: string;
  /** When the scheduler last started a backup of each volume (this process's life). */
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
    try {
      await checkRepository(this.options.repo);
      log.info({ repository: this.options.repo.repository }, 'backup repository ready');
    } catch (err) {
      log.warn(
        { repository: this.options.repo.repository, err: (err as Error).message },
        'backup repository unusable: backups and restores fail until it is fixed (create it with restic init)',
      );
    }
  }

  async backup(name: string, log: Logger): Promise<BackupInfo> {
    return this.one.run('backup', async () => {
      const started = Date.now();
      try {
        const info = await this.snapshots.withCopy(name, log, async (image, { record }) => {
          const { fs, sizeBytes } = record.spec;
          const tags = [...tagsOf(name), `fs=${fs}`, `size=${sizeBytes}`, FILES_FORMAT];
          const { snapshot_id: short } = await this.files.backup(image, fs, name, tags, this.host, log);
          // restic's summary names the backup by its short id; list it for the full one.
          const made = (await this.list(name)).find((b) => b.id.startsWith(short));
          if (!made)
            throw new VolumeError(`restic reported backup ${short}, but it is not in the repository`);
          return made;
        });
        if (this.options.keep > 0) await forgetOlder(this.options.repo, tagsOf(name), this.options.keep);
        await this.record(name, { lastSuccess: { time: info.time, id: info.id } });
        log.info({ backup: info.id, ms: Date.now() - started }, 'volume backed up');
        return info;
      } catch (err) {
        const error = (err as Error).message;
        if (this.service.has(name)) {
          await this.record(name, { lastFailure: { time: new Date().toISOString(), error } }).catch(
            () => undefined,
          );
        }
        log.error({ err: error }, 'backup failed');
        throw err instanceof VolumeError ? err : new VolumeError(`cannot back volume ${name} up: ${error}`);
      }
    });
  }

  /**
   * Runs the backups volumes asked for with `-o backup=INTERVAL`, one at a time: a volume is due
   * when its last success (or, failing, its last attempt) is an interval old; one never backed up
   * is due at once.
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
        const every = this.service.specOf(name)?.backupEverySeconds;
        if (!every) continue;
        const last = Math.max(
          Date.parse(this.status(name).lastSuccess?.time ?? '') || 0,
          this.attempted.get(name) ?? 0,
        );
        if (Date.now() - last < every * 1000) continue;
        this.attempted.set(name, Date.now());
        await this.backup(name, log.child({ volume: name, scheduled: true })).catch(() => undefined);
      }
    } finally {
      this.ticking = false;
    }
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
   * `name` (from any host), written sparse into the new image.
   */
  sourceOf(name: string, backup: string): ImageSource {
    return async (dest) => {
      const chosen = await this.choose(name, backup);
      await this.dump(chosen, dest);
      const restored = { keepUuid: !this.uuidInUse(dest, chosen.fs as FsType) };
      return { fs: chosen.fs as FsType, sizeBytes: chosen.sizeBytes, restored } satisfies Copied;
    };
  }

  /** The size of the volume a restore brings back (for the space guard). */
  async sizeOf(name: string, backup: string): Promise<number> {
    return (await this.choose(name, backup)).sizeBytes;
  }

  /** Backup `backup` (an id or its prefix), or the latest of a volume named `name`. */
  private async choose(name: string, backup: string): Promise<BackupInfo> {
    const latest = backup === LATEST_BACKUP;
    const candidates = await this.list(latest ? name : undefined);
    const chosen = latest ? candidates.at(-1) : candidates.find((b) => b.id.startsWith(backup));
    if (chosen) return chosen;
    throw new VolumeError(
      latest
        ? `there is no backup of a volume named ${name} in the repository: see "loopvol backups"`
        : `there is no backup ${backup} in the repository: see "loopvol backups"`,
      404,
    );
  }

  /**
   * Makes a backup's image at `dest`: formatted and filled with its files, or its whole image
   * written sparse (no longer than its recorded size); nothing is left at `dest` when it fails.
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
      const why = failure ? (failure as Error).message : stderr.trim().split('\n').at(-1);
      throw new VolumeError(`cannot restore backup ${backup.id}: ${why}`);
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

import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Copied, ImageSource } from '../core/clone.js';
import type { ClusterGuard } from '../core/cluster-guard.js';
import { VolumeError, wrap } from '../core/errors.js';
import type { FsType } from '../core/fs-type.js';
import { LATEST_BACKUP, type VolumeEncryption } from '../core/options.js';
import type { Snapshots } from '../snapshot/snapshots.js';
import { writeFileAtomic } from '../state/atomic.js';
import type { Store } from '../state/store.js';
import { filesystemUuid } from '../system/fs-uuid.js';
import {
  dumpFile,
  listSnapshots,
  type ResticRepo,
  type ResticSnapshot,
  redactCredentials,
} from '../system/restic.js';
import { writeSparse } from '../system/sparse-write.js';
import type { VolumePort } from '../volume/port.js';
import type { FileBackups } from './file-backup.js';
import { encryptionOfTags } from './image-backup.js';
import { newestFirst } from './retention.js';

/** How backups are made; from the daemon's flags. */
export interface BackupOptions {
  repo: ResticRepo;
  /** Backups kept per volume; 0 keeps all (DEFAULT_SCHEDULED_KEEP for scheduled backups). */
  keep: number;
  /** The host name recorded with each backup; default the host's name. */
  host?: string;
  /** With --cluster: only the owner of a volume backs it up. */
  cluster?: ClusterGuard;
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
  /** An encrypted volume's image backup: the key it is encrypted with (see VolumeEncryption). */
  encryption?: VolumeEncryption;
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

/** Tags a backup carries: restic finds a volume's backups by them, from any host. */
const TAG = 'loopvol';
export const tagsOf = (volume: string) => [TAG, `volume=${volume}`];
/** A backup of the volume's files; a backup without it holds the whole image as one file. */
export const FILES_FORMAT = 'format=files';
const tagValue = (s: ResticSnapshot, key: string) =>
  s.tags?.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
/** The generation a backup's `gen=` tag holds; 0 for backups from before generations, or a bad tag. */
const generationOf = (s: ResticSnapshot) => {
  const gen = Number(tagValue(s, 'gen'));
  return Number.isSafeInteger(gen) && gen >= 0 ? gen : 0;
};
/** A backup as loopvol reports it, from what restic lists (or was given). */
export const infoOf = (s: ResticSnapshot): BackupInfo => ({
  id: s.id,
  time: s.time,
  host: s.hostname,
  volume: tagValue(s, 'volume') ?? '',
  fs: tagValue(s, 'fs') ?? '',
  sizeBytes: Number(tagValue(s, 'size') ?? 0),
  generation: generationOf(s),
  format: s.tags?.includes(FILES_FORMAT) ? 'files' : 'image',
  ...withEncryption(encryptionOfTags(s.tags)),
});
const withEncryption = (encryption: VolumeEncryption | undefined) => (encryption ? { encryption } : {});
/** The path a volume's image has inside its backups. */
const fileOf = (volume: string) => `/${volume}.img`;
const STATUS_FILE = 'backup.json';
/**
 * What the repository holds of this daemon's volumes: their backups listed and chosen, a chosen
 * backup turned into an image (restores, `-o from=backup`), and each volume's backup status.
 * Backups (backups.ts) adds making, pruning, verifying and scheduling them; the two are one object,
 * split only to keep each file readable.
 */
export abstract class BackupRepository {
  private readonly statuses = new Map<string, BackupStatus>();
  protected readonly host: string;

  constructor(
    protected readonly store: Store,
    protected readonly service: VolumePort,
    protected readonly snapshots: Snapshots,
    protected readonly options: BackupOptions,
    protected readonly files: FileBackups,
  ) {
    this.host = options.host ?? hostname();
  }

  /** Backups of one volume, or of every volume, oldest first. */
  async list(name?: string): Promise<BackupInfo[]> {
    try {
      const found = await listSnapshots(this.options.repo, name ? tagsOf(name) : [TAG]);
      return found.map(infoOf);
    } catch (err) {
      throw wrap(err, 'cannot list the backups');
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
      return {
        fs: chosen.fs as FsType,
        sizeBytes: chosen.sizeBytes,
        restored,
        ...withEncryption(chosen.encryption),
      } satisfies Copied;
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
  protected async choose(name: string, backup: string, restoreOther: boolean): Promise<BackupInfo> {
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
  protected async dump(backup: BackupInfo, dest: string): Promise<void> {
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

  protected async record(name: string, change: BackupStatus): Promise<void> {
    const next = { ...this.status(name), ...change };
    this.statuses.set(name, next);
    await writeFileAtomic(join(this.store.layout.volume(name).dir, STATUS_FILE), JSON.stringify(next));
  }
}

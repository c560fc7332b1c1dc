import { randomBytes } from 'node:crypto';
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { VolumeError, wrap } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import type { FsType } from '../core/fs-type.js';
import { volumeName } from '../core/name.js';
import { MAX_SIZE_BYTES } from '../core/size.js';
import { createSparse } from '../system/allocate.js';
import { digHolesUnder } from '../system/dig-holes.js';
import { ToolTimedOut } from '../system/exec.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { loopReadBytes } from '../system/loop-sysfs.js';
import { makeFilesystem } from '../system/mkfs.js';
import { UNTRUSTED_CONTENT_OPTIONS } from '../system/mount.js';
import { readMounts } from '../system/mountinfo.js';
import { type BackupSummary, backupDirectory, type ResticRepo, restoreSnapshot } from '../system/restic.js';

/**
 * A copy of a frozen filesystem is consistent on disk (the freeze wrote everything back), but its
 * superblock still says "in use": a plain read-only mount would replay the journal (ext4) or log
 * (xfs), which writes. These mount it as it is; xfs also tolerates the UUID of the live original.
 */
const READ_ONLY_OPTIONS: Record<FsType, readonly string[]> = {
  ext4: ['ro', 'noload', ...UNTRUSTED_CONTENT_OPTIONS, 'noexec'],
  xfs: ['ro', 'norecovery', 'nouuid', ...UNTRUSTED_CONTENT_OPTIONS, 'noexec'],
};

/** What a file-level backup did: restic's summary and the bytes it read from the copy's image. */
export interface FilesBackedUp extends BackupSummary {
  readBytes: number;
}

/** What restic records with a backup: its tags and this host's name. */
export interface Backing {
  tags: string[];
  host: string;
}

/** A backup of a live volume that would have kept it frozen longer than --max-freeze. */
export class FreezeTooLong extends VolumeError {}

/** What a restore needs to rebuild a volume: the filesystem around the files. */
export interface FilesBackup {
  id: string;
  /** The backed-up volume's name: the snapshot's top-level directory. */
  volume: string;
  fs: string;
  sizeBytes: number;
}

/**
 * Backups as files. A backup mounts the frozen copy of a volume read-only and has restic back its
 * files up. restic compares them with its parent, the newest backup of the same path from the same
 * host, which the fixed mount path makes this host's previous backup of the volume (no lookup, one
 * restic process less): unchanged files (same size, mtime, ctime and inode, which the copy keeps)
 * are skipped unread, so a backup costs what changed, not the image's size. A restore formats a new image of the recorded size and
 * filesystem and has restic fill it; the caller checks it (fsck) before anything mounts it.
 *
 * Mounts live under <dataRoot>/.backup: read/<volume> (one backup at a time, the fixed path) and
 * write/<random>/<volume> (restores). A plugin killed meanwhile leaves the mount and its loop
 * device behind; their image is under the data root, so start-up's gc unmounts and detaches them.
 */
export class FileBackups {
  private readonly dir: string;

  constructor(
    private readonly kernel: KernelOps,
    private readonly repo: ResticRepo,
    dataRoot: string,
  ) {
    this.dir = join(dataRoot, '.backup');
  }

  /** Backs up the filesystem in `image` (a consistent copy of volume `volume`). */
  backup(image: string, fs: FsType, volume: string, backing: Backing, log: Logger): Promise<FilesBackedUp> {
    return this.reported('copy', volume, log, (at) =>
      this.withMounted(image, fs, at, true, (device) => this.read(at, device, backing)),
    );
  }

  /**
   * Backs up the mounted filesystem of volume `volume` at `mountPoint` on `device`, which the
   * caller keeps frozen: through a read-only bind at the backups' fixed path, so restic finds the
   * same parent as for a copy (inode numbers and times are the same in both), and reads nothing
   * the freeze would block (a read-only mount updates no access time). restic gets `withinMs`:
   * past it, it is stopped and FreezeTooLong thrown, the caller then backs up a copy instead.
   */
  backupLive(
    mountPoint: string,
    device: string,
    volume: string,
    backing: Backing,
    withinMs: number,
    log: Logger,
  ): Promise<FilesBackedUp> {
    return this.reported('live', volume, log, (at) =>
      this.withDirectory(at, async () => {
        await this.kernel.bindReadOnly(mountPoint, at);
        try {
          return await this.read(at, device, backing, withinMs);
        } catch (err) {
          if (!(err instanceof ToolTimedOut)) throw err;
          throw new FreezeTooLong(`restic did not finish within --max-freeze (${withinMs} ms): stopped it`);
        } finally {
          await this.kernel.unmount(at);
        }
      }),
    );
  }

  /**
   * Start-up: unmounts what a plugin killed during a backup left at the backups' fixed path (a
   * bind of a live volume is no loop device of a copy, which gc finds; the freeze's marker has
   * Snapshots.recover thaw the volume).
   */
  async recover(log: Logger): Promise<void> {
    const read = join(this.dir, 'read');
    for (const { mountPoint } of (await readMounts()).reverse()) {
      if (dirname(mountPoint) !== read) continue;
      const vlog = log.child({ volume: basename(mountPoint) });
      try {
        await this.kernel.unmount(mountPoint);
        await rmdir(mountPoint).catch(() => undefined);
        vlog.warn({ mountPoint }, 'unmounted what an interrupted backup left');
      } catch (err) {
        // Served regardless: the next backup of this volume fails until it is unmounted.
        vlog.error({ err: (err as Error).message }, `could not unmount it: run "umount ${mountPoint}"`);
      }
    }
  }

  /** restic on the filesystem at `at` on `device`: its summary and what it read of the device. */
  private async read(
    at: string,
    device: string,
    backing: Backing,
    withinMs?: number,
  ): Promise<FilesBackedUp> {
    crashPoint('backup:mounted');
    // A loop device's counters outlive its detach: what this backup read is the difference.
    const before = loopReadBytes(device);
    const summary = await backupDirectory(this.repo, at, backing.tags, backing.host, withinMs);
    return { ...summary, readBytes: loopReadBytes(device) - before };
  }

  /** Runs `backUp` with the backups' fixed path for `volume`, and logs what it did. */
  private async reported(
    via: 'live' | 'copy',
    volume: string,
    log: Logger,
    backUp: (at: string) => Promise<FilesBackedUp>,
  ): Promise<FilesBackedUp> {
    const started = Date.now();
    const made = await backUp(join(this.dir, 'read', volume));
    log.info(
      {
        via,
        ms: Date.now() - started,
        filesNew: made.files_new,
        filesChanged: made.files_changed,
        filesUnmodified: made.files_unmodified,
        dataAdded: made.data_added,
        readBytes: made.readBytes,
      },
      'files backed up',
    );
    return made;
  }

  /** Makes the image `dest` from `backup`; nothing is left at `dest` when it fails. */
  async restore(backup: FilesBackup, dest: string): Promise<void> {
    const { fs, sizeBytes, volume } = checked(backup);
    const dir = join(this.dir, 'write', randomBytes(8).toString('hex'));
    try {
      await createSparse(dest, sizeBytes);
      await makeFilesystem(dest, fs, 'sparse-image');
      await this.withMounted(dest, fs, join(dir, volume), false, async () => {
        crashPoint('restore:mounted');
        // mkfs.ext4 made one; the backup brings its own if the volume had one.
        await rmdir(join(dir, volume, 'lost+found')).catch(() => undefined);
        await restoreSnapshot(this.repo, backup.id, volume, dir);
        await digHolesUnder(join(dir, volume));
      });
    } catch (err) {
      await rm(dest, { force: true });
      throw wrap(err, `cannot restore backup ${backup.id}`);
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
  }

  /**
   * Attaches `image`, mounts it at `mountPoint` (made and removed here) and runs `use`; unmounts
   * and detaches whatever happens.
   */
  private async withMounted<T>(
    image: string,
    fs: FsType,
    mountPoint: string,
    readOnly: boolean,
    use: (device: string) => Promise<T>,
  ): Promise<T> {
    return this.withDirectory(mountPoint, async () => {
      const device = await this.kernel.attachLoop(image, { directIo: false, readOnly });
      try {
        await this.kernel.mount(
          device,
          mountPoint,
          fs,
          readOnly ? READ_ONLY_OPTIONS[fs] : UNTRUSTED_CONTENT_OPTIONS,
        );
        try {
          return await use(device);
        } finally {
          await this.kernel.unmount(mountPoint);
        }
      } finally {
        await this.kernel.detachLoop(device);
      }
    });
  }

  /** Makes the directory `mountPoint` for `use` and removes it afterwards. */
  private async withDirectory<T>(mountPoint: string, use: () => Promise<T>): Promise<T> {
    await mkdir(mountPoint, { recursive: true, mode: 0o700 });
    try {
      return await use();
    } finally {
      // Not recursive: should the unmount have failed, the directory is not emptied through the mount.
      await rmdir(mountPoint).catch(() => undefined);
    }
  }
}

/** A backup's record comes from the repository: its name becomes a path, its size an image. */
function checked(backup: FilesBackup): { fs: FsType; sizeBytes: number; volume: string } {
  const { fs, sizeBytes, volume } = backup;
  if (fs !== 'ext4' && fs !== 'xfs')
    throw new VolumeError(`backup ${backup.id} records an unknown filesystem ${JSON.stringify(fs)}`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes > MAX_SIZE_BYTES)
    throw new VolumeError(`backup ${backup.id} records an impossible size ${sizeBytes}`);
  if (!volumeName.safeParse(volume).success)
    throw new VolumeError(`backup ${backup.id} records an invalid volume name ${JSON.stringify(volume)}`);
  return { fs, sizeBytes, volume };
}

import { randomBytes } from 'node:crypto';
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { VolumeError } from '../core/errors.js';
import { volumeName } from '../core/name.js';
import { MAX_SIZE_BYTES } from '../core/size.js';
import { crashPoint } from '../faults.js';
import { createSparse } from '../system/allocate.js';
import { digHolesUnder } from '../system/dig-holes.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { loopReadBytes } from '../system/loop-sysfs.js';
import { makeFilesystem } from '../system/mkfs.js';
import { type FsType, UNTRUSTED_CONTENT_OPTIONS } from '../system/mount.js';
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
  async backup(
    image: string,
    fs: FsType,
    volume: string,
    tags: string[],
    host: string,
    log: Logger,
  ): Promise<FilesBackedUp> {
    const mountPoint = join(this.dir, 'read', volume);
    const made = await this.withMounted(image, fs, mountPoint, true, async (device) => {
      crashPoint('backup:mounted');
      // A loop device's counters outlive its detach: what this backup read is the difference.
      const before = loopReadBytes(device);
      const summary = await backupDirectory(this.repo, mountPoint, tags, host);
      return { ...summary, readBytes: loopReadBytes(device) - before };
    });
    log.info(
      {
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
        await restoreSnapshot(this.repo, backup.id, dir);
        await digHolesUnder(join(dir, volume));
      });
    } catch (err) {
      await rm(dest, { force: true });
      throw new VolumeError(`cannot restore backup ${backup.id}: ${(err as Error).message}`);
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
    await mkdir(mountPoint, { recursive: true, mode: 0o700 });
    try {
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

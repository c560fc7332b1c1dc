import type { FsType } from '../core/fs-type.js';
import { hasLostFound, removeLostFound } from './debugfs.js';
import { run } from './exec.js';
import { filesystemUuidIn, readFilesystemHead } from './fs-head.js';

/** A filesystem's UUID, read from its superblock (no blkid process, no cache). */
export const filesystemUuid = (target: string, fs: FsType): string | undefined =>
  filesystemUuidIn(readFilesystemHead(target), fs);

/**
 * Gives an unmounted filesystem (in an image or on a device) a new random UUID, so that a copy
 * can be mounted beside its original (xfs refuses two filesystems with one UUID). tune2fs wants a
 * freshly checked ext4 first; e2fsck -p fixes only what is safe (exit 1 says it did). xfs_admin
 * wants a clean log (see the caller) and exits 0 even when it refuses, so the result is checked.
 */
export async function newFilesystemUuid(target: string, fs: FsType): Promise<void> {
  const before = filesystemUuid(target, fs);
  if (fs === 'xfs') {
    await run('xfs_admin', ['-f', '-U', 'generate', target], { timeoutMs: 600_000 });
  } else {
    // e2fsck makes a lost+found the root lacks; the copy's root must stay as the original's.
    const hadLostFound = await hasLostFound(target);
    await run('e2fsck', ['-f', '-p', '--', target], { timeoutMs: 3_600_000, alsoSuccess: [1] });
    if (!hadLostFound) await removeLostFound(target);
    await run('tune2fs', ['-U', 'random', target], { timeoutMs: 600_000 });
  }
  if (filesystemUuid(target, fs) === before) {
    throw new Error(`could not give the copied ${fs} filesystem a new UUID (still ${before})`);
  }
}

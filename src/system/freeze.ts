import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { run } from './exec.js';
import { loadLibc, SyscallError } from './libc.js';

// <linux/fs.h>: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const FIFREEZE = 0xc0045877;
export const FITHAW = 0xc0045878;

/** A directory that is not the root of the filesystem asked for: it is not frozen. */
export class NotTheVolume extends Error {
  override name = 'NotTheVolume';
}

/**
 * FIFREEZE (or FITHAW) on the filesystem of an open directory: writes block and the filesystem is
 * made consistent on disk, so a copy of its device taken meanwhile mounts cleanly. FIFREEZE syncs
 * first and may take a while, so it runs on a worker thread; without the FFI, fsfreeze(8) does it,
 * given /proc/PID/fd/N: the directory open here, not whatever the path leads to by then.
 */
async function freezeIoctl(dir: FileHandle, request: number, tool: '-f' | '-u'): Promise<void> {
  const libc = await loadLibc();
  if (libc instanceof Error) {
    await run('fsfreeze', [tool, '--', `/proc/${process.pid}/fd/${dir.fd}`], { timeoutMs: 120_000 });
    return;
  }
  await libc.callAsync('ioctl', dir.fd, request, 0);
}

/** Thaws; a filesystem that is not frozen (EINVAL) is not an error: thawing is idempotent. */
async function thawOpen(dir: FileHandle): Promise<void> {
  try {
    await freezeIoctl(dir, FITHAW, '-u');
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EINVAL') return;
    if ((err as Error).message.includes('Invalid argument')) return;
    throw err;
  }
}

const openDirectory = (path: string) => open(path, constants.O_RDONLY | constants.O_DIRECTORY);

/**
 * Opens the directory at `mountPoint` (for `doing`) and checks that it is on block device `device`:
 * unmounted from outside in the meantime, the path would lead to the filesystem below it (the
 * host's) or to whatever was mounted there since, and an ioctl on that would hit the wrong one.
 */
export async function openVolumeDirectory(
  mountPoint: string,
  device: string,
  doing: 'freezing' | 'shutting down',
): Promise<FileHandle> {
  const dir = await openDirectory(mountPoint);
  try {
    const [opened, expected] = await Promise.all([
      dir.stat({ bigint: true }),
      stat(device, { bigint: true }),
    ]);
    if (opened.dev !== expected.rdev) {
      throw new NotTheVolume(
        `${mountPoint} is not on ${device} (unmounted from outside?): not ${doing} what is there instead`,
      );
    }
  } catch (err) {
    await dir.close();
    throw err;
  }
  return dir;
}

/**
 * Freezes the filesystem of block device `device` mounted at `mountPoint` (checked first, see
 * openVolumeDirectory); returns its thaw, through the same open directory, so it thaws what was frozen.
 */
export async function freezeFilesystem(mountPoint: string, device: string): Promise<() => Promise<void>> {
  const dir = await openVolumeDirectory(mountPoint, device, 'freezing');
  try {
    await freezeIoctl(dir, FIFREEZE, '-f');
  } catch (err) {
    await dir.close();
    throw err;
  }
  return async () => {
    try {
      await thawOpen(dir);
    } finally {
      await dir.close();
    }
  };
}

/** Thaws the filesystem at `mountPoint` (start-up, after a crash left it frozen). */
export async function thawFilesystem(mountPoint: string): Promise<void> {
  const dir = await openDirectory(mountPoint);
  try {
    await thawOpen(dir);
  } finally {
    await dir.close();
  }
}

import { closeSync, openSync } from 'node:fs';
import { run } from './exec.js';
import { loadLibc, SyscallError } from './libc.js';

// <linux/fs.h>: _IOWR('X', 119, int) and _IOWR('X', 120, int).
const FIFREEZE = 0xc0045877;
export const FITHAW = 0xc0045878;

/**
 * Freezes (or thaws) the filesystem mounted at `mountPoint`: writes block and the filesystem is
 * made consistent on disk, so a copy of its device taken meanwhile mounts cleanly. FIFREEZE syncs
 * first and may take a while, so it runs on a worker thread; without the FFI, fsfreeze(8) does it.
 */
async function freezeIoctl(mountPoint: string, request: number, tool: '-f' | '-u'): Promise<void> {
  const libc = await loadLibc();
  if (libc instanceof Error) {
    await run('fsfreeze', [tool, '--', mountPoint], { timeoutMs: 120_000 });
    return;
  }
  const fd = openSync(mountPoint, 'r');
  try {
    await libc.callAsync('ioctl', fd, request, 0);
  } finally {
    closeSync(fd);
  }
}

export const freezeFilesystem = (mountPoint: string) => freezeIoctl(mountPoint, FIFREEZE, '-f');

/** Thaws; a filesystem that is not frozen (EINVAL) is not an error: thawing is idempotent. */
export async function thawFilesystem(mountPoint: string): Promise<void> {
  try {
    await freezeIoctl(mountPoint, FITHAW, '-u');
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EINVAL') return;
    if ((err as Error).message.includes('Invalid argument')) return;
    throw err;
  }
}

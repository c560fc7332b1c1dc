import { closeSync, openSync } from 'node:fs';
import { FITHAW } from './freeze.js';
import { loadLibc, SyscallError } from './libc.js';

/**
 * EXT4_IOC_SHUTDOWN and XFS_IOC_GOINGDOWN are the same request, _IOR('X', 125, __u32), with the
 * same flags. NOLOGFLUSH: nothing more reaches the device, not even the journal's tail; a copy
 * frozen before keeps exactly its frozen (consistent) state.
 */
const FS_IOC_SHUTDOWN = 0x8004587d;
const GOING_FLAGS_NOLOGFLUSH = 2;

/**
 * Shuts the filesystem mounted at `mountPoint` down for good: every later read or write on it
 * fails with EIO; only an unmount and a new mount make it usable again. A frozen filesystem is
 * thawed right after, through the same descriptor (a shut down ext4 refuses new opens), so that
 * the writers blocked on the freeze wake and fail too. Needs the FFI (no tool does both fs).
 */
export async function shutdownFilesystem(mountPoint: string): Promise<void> {
  const libc = await loadLibc();
  if (libc instanceof Error)
    throw new Error(`cannot shut ${mountPoint} down without the FFI: ${libc.message}`);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(GOING_FLAGS_NOLOGFLUSH, 0);
  let fd: number;
  try {
    fd = openSync(mountPoint, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EIO') return; // shut down already
    throw err;
  }
  try {
    await libc.callAsync('ioctlPtr', fd, FS_IOC_SHUTDOWN, flags);
    try {
      await libc.callAsync('ioctl', fd, FITHAW, 0);
    } catch (err) {
      if (!(err instanceof SyscallError && err.code === 'EINVAL')) throw err; // was not frozen
    }
  } finally {
    closeSync(fd);
  }
}

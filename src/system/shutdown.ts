import type { FileHandle } from 'node:fs/promises';
import { FITHAW, openVolumeDirectory } from './freeze.js';
import { loadLibc, SyscallError } from './libc.js';
import { mountAt } from './mountinfo.js';

/**
 * EXT4_IOC_SHUTDOWN and XFS_IOC_GOINGDOWN are the same request, _IOR('X', 125, __u32), with the
 * same flags. NOLOGFLUSH: nothing more reaches the device, not even the journal's tail; a copy
 * frozen before keeps exactly its frozen (consistent) state.
 */
const FS_IOC_SHUTDOWN = 0x8004587d;
const GOING_FLAGS_NOLOGFLUSH = 2;

/**
 * Shuts the filesystem of block device `device` mounted at `mountPoint` down for good: every
 * later read or write on it fails with EIO; only an unmount and a new mount make it usable again.
 * The directory is checked to be on `device` first (see openVolumeDirectory): a volume unmounted
 * in between must not take the host's filesystem below it down. A frozen filesystem is thawed
 * right after, through the same descriptor (a shut down ext4 refuses new opens), so that the
 * writers blocked on the freeze wake and fail too. Needs the FFI (no tool does both fs).
 */
export async function shutdownFilesystem(mountPoint: string, device: string): Promise<void> {
  const libc = await loadLibc();
  if (libc instanceof Error)
    throw new Error(`cannot shut ${mountPoint} down without the FFI: ${libc.message}`);
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE(GOING_FLAGS_NOLOGFLUSH, 0);
  let dir: FileHandle;
  try {
    dir = await openVolumeDirectory(mountPoint, device, 'shutting down');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EIO') return; // shut down already
    throw err;
  }
  try {
    await libc.callAsync('ioctlPtr', dir.fd, FS_IOC_SHUTDOWN, flags);
    try {
      await libc.callAsync('ioctl', dir.fd, FITHAW, 0);
    } catch (err) {
      if (!(err instanceof SyscallError && err.code === 'EINVAL')) throw err; // was not frozen
    }
  } finally {
    await dir.close();
  }
}

/** Shuts down the filesystem mounted at `mountPoint`, on the device the kernel says is mounted there. */
export async function shutdownMounted(mountPoint: string): Promise<void> {
  const mount = await mountAt(mountPoint);
  if (!mount) throw new Error(`${mountPoint} is not mounted: nothing to shut down`);
  await shutdownFilesystem(mountPoint, mount.source);
}

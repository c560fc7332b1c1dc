import type { FsType } from '../core/fs-type.js';
import type { Libc } from './libc.js';
import { BIND_READ_ONLY_OPTIONS } from './mount.js';

/** <sys/mount.h>: the options mount(8) turns into flags; every other option goes to the filesystem. */
const MOUNT_FLAGS: Record<string, number> = {
  ro: 1, // MS_RDONLY
  rw: 0,
  nosuid: 2,
  nodev: 4,
  noexec: 8,
  sync: 16,
  dirsync: 128,
  noatime: 1024,
  nodiratime: 2048,
  relatime: 1 << 21,
  strictatime: 1 << 24,
  lazytime: 1 << 25,
};

/** Splits mount(8)-style options into mount(2)'s flags and the filesystem's data string. */
export function splitMountOptions(options: readonly string[]): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const option of options) {
    const flag = MOUNT_FLAGS[option];
    if (flag === undefined) data.push(option);
    else flags |= flag;
  }
  return { flags, data: data.join(',') };
}

export async function mountSyscall(
  libc: Libc,
  device: string,
  mountPoint: string,
  fsType: FsType,
  options: readonly string[],
): Promise<void> {
  const { flags, data } = splitMountOptions(options);
  try {
    await libc.callAsync('mount', device, mountPoint, fsType, flags, data || null);
  } catch (err) {
    throw new Error(`cannot mount ${device} (${fsType}) on ${mountPoint}: ${(err as Error).message}`);
  }
}

const MS_REMOUNT = 32;
const MS_BIND = 4096;

/** A second, read-only view of the directory tree at `source` (see bindReadOnly). */
export async function bindReadOnlySyscall(libc: Libc, source: string, target: string): Promise<void> {
  try {
    await libc.callAsync('mount', source, target, null, MS_BIND, null);
  } catch (err) {
    throw new Error(`cannot bind ${source} on ${target}: ${(err as Error).message}`);
  }
  const { flags } = splitMountOptions(BIND_READ_ONLY_OPTIONS);
  try {
    await libc.callAsync('mount', null, target, null, MS_REMOUNT | MS_BIND | flags, null);
  } catch (err) {
    await unmountSyscall(libc, target);
    throw new Error(`cannot make the bind on ${target} read-only: ${(err as Error).message}`);
  }
}

export async function unmountSyscall(libc: Libc, mountPoint: string): Promise<void> {
  try {
    await libc.callAsync('umount2', mountPoint, 0);
  } catch (err) {
    throw new Error(`cannot unmount ${mountPoint}: ${(err as Error).message}`);
  }
}

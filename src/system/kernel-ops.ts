import { loadLibc } from './libc.js';
import { attachLoopIoctl, detachLoopIoctl } from './loop-ioctl.js';
import { attachLoop, detachLoop } from './losetup.js';
import { type FsType, mountDevice, unmount } from './mount.js';
import { mountSyscall, unmountSyscall } from './mount-syscall.js';

/** How a loop device serves its image. */
export interface LoopAttachOptions {
  /** Bypass the host page cache for the backing file (one cache, not two). */
  directIo: boolean;
  /** Logical block size in bytes (512 to 4096); 0 or absent: the kernel's default, 512. */
  blockSize?: number;
  /** Refuse writes at the device (a backup's copy: nothing may change what is read). */
  readOnly?: boolean;
}

/** The kernel operations on the Mount and Unmount path. */
export interface KernelOps {
  /** `syscalls`: ioctl and mount(2) through the FFI; `tools`: losetup, mount and umount processes. */
  readonly via: 'syscalls' | 'tools';
  attachLoop(image: string, options: LoopAttachOptions): Promise<string>;
  /** Detaches; a device already gone or whose detach the kernel deferred is not an error. */
  detachLoop(device: string): Promise<void>;
  /** `options` in mount(8) form (nosuid, noatime, data=journal, ...). */
  mount(device: string, mountPoint: string, fsType: FsType, options: readonly string[]): Promise<void>;
  unmount(mountPoint: string): Promise<void>;
}

export const toolOps: KernelOps = {
  via: 'tools',
  attachLoop,
  detachLoop,
  mount: mountDevice,
  unmount,
};

/**
 * System calls when the FFI loads (a process costs more than the kernel work of a whole Mount),
 * the tools otherwise. `LOOPVOL_SYSCALLS=tools` forces the tools. `fallback` says why the system
 * calls are not used, for the one log line at start.
 */
export async function selectKernelOps(prefer = process.env.LOOPVOL_SYSCALLS): Promise<{
  ops: KernelOps;
  fallback?: string;
}> {
  if (prefer === 'tools') return { ops: toolOps, fallback: 'LOOPVOL_SYSCALLS=tools' };
  const libc = await loadLibc();
  if (libc instanceof Error) return { ops: toolOps, fallback: `FFI unavailable: ${libc.message}` };
  return {
    ops: {
      via: 'syscalls',
      attachLoop: (image, options) => attachLoopIoctl(libc, image, options),
      detachLoop: (device) => detachLoopIoctl(libc, device),
      mount: (device, mountPoint, fsType, options) => mountSyscall(libc, device, mountPoint, fsType, options),
      unmount: (mountPoint) => unmountSyscall(libc, mountPoint),
    },
  };
}

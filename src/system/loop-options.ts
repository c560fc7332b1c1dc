/**
 * How a loop device serves its image. Apart from kernel-ops.ts: both attach paths it chooses between
 * (loop-ioctl.ts, losetup.ts) take these, and kernel-ops.ts imports them.
 */
export interface LoopAttachOptions {
  /** Bypass the host page cache for the backing file (one cache, not two). */
  directIo: boolean;
  /** Logical block size in bytes (512 to 4096); 0 or absent: the kernel's default, 512. */
  blockSize?: number;
  /** Refuse writes at the device (a backup's copy: nothing may change what is read). */
  readOnly?: boolean;
}

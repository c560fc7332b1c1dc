import type { FsType } from '../core/fs-type.js';
import { EXT4_SUPERBLOCK, isExt4, isXfs } from './fs-head.js';

/** The largest logical block a loop device needs for direct I/O on any backing file here. */
const MAX_LOGICAL_BLOCK = 4096;

/**
 * The smallest unit the filesystem whose head (readFilesystemHead) is given writes (ext4: its
 * block size; xfs: its sector size), capped at 4 KiB; undefined when it is neither. A loop device
 * serving it must not have larger logical blocks, or the filesystem will not mount: the kernel
 * raises a device's logical block size to what direct I/O on the backing file needs (4 KiB for an
 * image whose blocks a reflink snapshot shares on xfs), unless the attach names a block size.
 */
export function filesystemBlockSize(head: Buffer, fs: FsType): number | undefined {
  let size: number | undefined;
  if (fs === 'ext4' && isExt4(head)) size = 1024 << head.readUInt32LE(EXT4_SUPERBLOCK + 0x18);
  else if (fs === 'xfs' && isXfs(head)) size = head.readUInt16BE(102);
  return size === undefined ? undefined : Math.min(size, MAX_LOGICAL_BLOCK);
}

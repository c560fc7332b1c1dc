import { closeSync, openSync, readSync } from 'node:fs';
import type { FsType } from './mount.js';

/** The largest logical block a loop device needs for direct I/O on any backing file here. */
const MAX_LOGICAL_BLOCK = 4096;

/**
 * The smallest unit the filesystem in an image writes (ext4: its block size; xfs: its sector
 * size), capped at 4 KiB; undefined when the image holds neither. A loop device serving it must
 * not have larger logical blocks, or the filesystem will not mount: the kernel raises a device's
 * logical block size to what direct I/O on the backing file needs (4 KiB for an image whose
 * blocks a reflink snapshot shares on xfs), unless the attach names a block size.
 */
export function filesystemBlockSize(image: string, fs: FsType): number | undefined {
  const head = Buffer.alloc(2048);
  const fd = openSync(image, 'r');
  try {
    if (readSync(fd, head, 0, head.length, 0) < head.length) return undefined;
  } finally {
    closeSync(fd);
  }
  let size: number | undefined;
  if (fs === 'ext4' && head.readUInt16LE(1024 + 0x38) === 0xef53) {
    size = 1024 << head.readUInt32LE(1024 + 0x18);
  } else if (fs === 'xfs' && head.toString('latin1', 0, 4) === 'XFSB') {
    size = head.readUInt16BE(102);
  }
  return size === undefined ? undefined : Math.min(size, MAX_LOGICAL_BLOCK);
}

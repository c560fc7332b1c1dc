import { closeSync, openSync, readSync } from 'node:fs';
import type { FsType } from '../core/fs-type.js';

/** The first 2 KiB of a filesystem hold what loopvol reads of it: xfs's superblock at 0, ext4's at 1024. */
const HEAD_BYTES = 2048;
/** Where ext4's primary superblock starts. */
export const EXT4_SUPERBLOCK = 1024;
/** ext4's s_magic, at 0x38 into its superblock. */
export const EXT4_MAGIC = 0xef53;
const EXT4_MAGIC_AT = EXT4_SUPERBLOCK + 0x38;
const EXT4_UUID_AT = EXT4_SUPERBLOCK + 0x68;
const XFS_UUID_AT = 32;

/**
 * The head of the filesystem in an image or on a device (shorter when the target is): one read
 * that every check of an unmounted filesystem shares, so a fresh attach reads it once.
 */
export function readFilesystemHead(target: string): Buffer {
  const head = Buffer.alloc(HEAD_BYTES);
  const fd = openSync(target, 'r');
  try {
    return head.subarray(0, readSync(fd, head, 0, HEAD_BYTES, 0));
  } finally {
    closeSync(fd);
  }
}

export const isExt4 = (head: Buffer): boolean =>
  head.length === HEAD_BYTES && head.readUInt16LE(EXT4_MAGIC_AT) === EXT4_MAGIC;

export const isXfs = (head: Buffer): boolean =>
  head.length >= XFS_UUID_AT + 16 && head.toString('latin1', 0, 4) === 'XFSB';

/** The filesystem's UUID as blkid prints it, or undefined when the head holds no `fs` filesystem. */
export function filesystemUuidIn(head: Buffer, fs: FsType): string | undefined {
  const at =
    fs === 'ext4' ? (isExt4(head) ? EXT4_UUID_AT : undefined) : isXfs(head) ? XFS_UUID_AT : undefined;
  if (at === undefined) return undefined;
  const hex = head.toString('hex', at, at + 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

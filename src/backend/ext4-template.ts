import { closeSync, openSync } from 'node:fs';
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import {
  type Ext4Identity,
  newExt4Identity,
  renewableSuperblocks,
  renewSuperblock,
} from '../system/ext4-identity.js';
import { readFilesystemHead } from '../system/fs-head.js';
import type { Libc } from '../system/libc.js';
import { type DataRange, dataRanges } from '../system/sparse-map.js';

/** An ext4 image formatted once, from which Creates write images of their own (writeFromTemplate). */
export interface Ext4Template {
  path: string;
  sizeBytes: number;
  /** Where the template holds data; everything else is a hole, in the template and in each copy. */
  ranges: DataRange[];
  /** Byte offsets of its superblocks, each inside one of `ranges`. */
  superblocks: number[];
}

const SUPERBLOCK_BYTES = 1024;

/**
 * Makes the freshly formatted ext4 image at `formatted` (its root ready, flushed) the template at
 * `path`: maps its data and superblocks, then renames it there. On failure `formatted` stays where
 * it is, for the caller to delete.
 */
export async function templateFrom(
  libc: Libc,
  formatted: string,
  path: string,
  sizeBytes: number,
): Promise<Ext4Template> {
  const superblocks = renewableSuperblocks(readFilesystemHead(formatted));
  if (!superblocks) throw new Error('mkfs.ext4 made no metadata_csum_seed filesystem: no template');
  const fd = openSync(formatted, 'r');
  let ranges: DataRange[];
  try {
    ranges = dataRanges(libc, fd, sizeBytes);
  } finally {
    closeSync(fd);
  }
  for (const at of superblocks) {
    if (!ranges.some((r) => r.offset <= at && at + SUPERBLOCK_BYTES <= r.offset + r.length)) {
      throw new Error(`the superblock at byte ${at} is not in the formatted image's data: no template`);
    }
  }
  await rename(formatted, path);
  return { path, sizeBytes, ranges, superblocks };
}

/**
 * Writes a new image at `dest` (which must not exist) from a template: its data ranges, with every
 * superblock given a new UUID and directory hash seed, then fsynced (as mkfs does), so a volume
 * whose record says it exists has its filesystem on disk. No process: a 1G image is about 0.7 MiB
 * of data in ten ranges.
 */
export async function writeFromTemplate(template: Ext4Template, dest: string): Promise<void> {
  const identity = newExt4Identity();
  const source = await open(template.path, 'r');
  try {
    const out = await open(dest, 'wx', 0o600);
    try {
      await copyRenewed(template, source, out, identity);
    } catch (err) {
      await rm(dest, { force: true });
      throw err;
    } finally {
      await out.close();
    }
  } finally {
    await source.close();
  }
}

async function copyRenewed(
  template: Ext4Template,
  source: FileHandle,
  out: FileHandle,
  identity: Ext4Identity,
) {
  await out.truncate(template.sizeBytes);
  for (const range of template.ranges) {
    const data = Buffer.allocUnsafe(range.length);
    const { bytesRead } = await source.read(data, 0, range.length, range.offset);
    if (bytesRead !== range.length) throw new Error(`template ${template.path} is shorter than mapped`);
    for (const at of template.superblocks) {
      const inRange = at - range.offset;
      if (inRange >= 0 && inRange + SUPERBLOCK_BYTES <= range.length) {
        renewSuperblock(data.subarray(inRange, inRange + SUPERBLOCK_BYTES), identity);
      }
    }
    await out.write(data, 0, range.length, range.offset);
  }
  await out.sync();
}

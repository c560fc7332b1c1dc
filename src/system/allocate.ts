import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { run } from './exec.js';

/** Creates a sparse file of `sizeBytes` (all hole); fails if `file` exists. */
export async function createSparse(file: string, sizeBytes: number): Promise<void> {
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.truncate(sizeBytes);
  } finally {
    await handle.close();
  }
}

/** Zeros written per call: large enough that the calls cost nothing beside the disk. */
const ZERO_CHUNK_BYTES = 8 * 2 ** 20;

/**
 * Writes zeros from the end of `file` (created if missing) up to `sizeBytes`, then flushes them,
 * so every block is written, not merely allocated: the host then journals no extent conversion
 * when the volume first writes a block and fsyncs it (prealloc=zero). Data already there is kept.
 * Costs a write of the whole range: about disk speed, and the whole size on the host at once.
 */
export async function writeZeros(file: string, sizeBytes: number): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT, 0o600);
  try {
    const zeros = Buffer.alloc(ZERO_CHUNK_BYTES);
    let at = (await handle.stat()).size;
    while (at < sizeBytes) {
      const { bytesWritten } = await handle.write(zeros, 0, Math.min(ZERO_CHUNK_BYTES, sizeBytes - at), at);
      at += bytesWritten;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Allocates every block of `file` up to `sizeBytes`, growing it if shorter. Blocks already there
 * keep their data, so this also refills holes something punched into a preallocated image.
 */
export async function preallocate(file: string, sizeBytes: number): Promise<void> {
  await run('fallocate', ['--length', String(sizeBytes), '--', file]);
}

/**
 * Allocates again what is missing from a file meant to be fully allocated, such as the free space
 * a host-wide fstrim punched out of a mounted preallocated image. Returns the bytes that were missing.
 */
export async function refillAllocation(file: string): Promise<number> {
  const { size, blocks } = await stat(file);
  const missing = size - blocks * 512;
  if (missing <= 0) return 0;
  await preallocate(file, size);
  return missing;
}

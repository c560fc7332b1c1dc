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

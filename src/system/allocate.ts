import { run } from './exec.js';

/**
 * Allocates every block of `file` up to `sizeBytes`, growing it if shorter. Blocks already there
 * keep their data, so this also refills holes something punched into a preallocated image.
 */
export async function preallocate(file: string, sizeBytes: number): Promise<void> {
  await run('fallocate', ['--length', String(sizeBytes), '--', file]);
}

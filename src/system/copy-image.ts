import { rm } from 'node:fs/promises';
import { run, runTool } from './exec.js';

/** How an image was copied: sharing the source's blocks, or block by block. */
export type CopyMethod = 'reflink' | 'copy';

/**
 * Copies an image file: a reflink (FICLONE) where the filesystem shares blocks (xfs with reflink,
 * btrfs): instant, and no space until the two diverge; elsewhere a sparse copy (cp uses
 * SEEK_DATA/SEEK_HOLE and copy_file_range), so holes stay holes. `dst` must not exist.
 */
export async function copyImage(src: string, dst: string): Promise<CopyMethod> {
  const shared = await runTool('cp', ['--reflink=always', '--', src, dst], { timeoutMs: 600_000 });
  if (shared.exitCode === 0) return 'reflink';
  await rm(dst, { force: true });
  await run('cp', ['--reflink=never', '--sparse=always', '--', src, dst], { timeoutMs: 3_600_000 });
  return 'copy';
}

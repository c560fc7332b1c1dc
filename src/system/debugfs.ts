import { run } from './exec.js';

/**
 * Removes lost+found from an unmounted ext4 image (mkfs.ext4 makes one; a volume's root must be
 * empty for dockerd to copy image content in), without attaching or mounting it.
 */
export async function removeLostFound(image: string, niceness?: number): Promise<void> {
  await run('debugfs', ['-w', '-R', 'rmdir lost+found', '--', image], { timeoutMs: 60_000, niceness });
}

/** Whether an unmounted ext4 image has /lost+found (debugfs prints nothing for a name it lacks). */
export async function hasLostFound(image: string): Promise<boolean> {
  const listing = await run('debugfs', ['-R', 'ls -l /', '--', image], { timeoutMs: 60_000 });
  return /\slost\+found\s*$/m.test(listing);
}

import { run } from './exec.js';
import type { FsType } from './mount.js';

/** What a caller asks of the new filesystem. */
export interface MkfsOptions {
  fsType: FsType;
  /**
   * Keep the image's blocks allocated. mkfs discards (punches holes in) a file by default, which
   * would silently turn a preallocated image sparse again.
   */
  keepAllocation: boolean;
}

/**
 * Formats an image file or block device. On a file this runs before any loop device exists, so a
 * failed format leaves nothing attached. Reserved blocks are 0: the volume's size is what the
 * container may use, whatever its uid.
 */
export async function makeFilesystem(target: string, options: MkfsOptions): Promise<void> {
  if (options.fsType === 'ext4') {
    const ext = ['lazy_itable_init=1', 'lazy_journal_init=1'];
    if (options.keepAllocation) ext.push('nodiscard');
    await run('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', ext.join(','), '--', target], {
      timeoutMs: 300_000,
    });
  } else {
    const args = ['-q', '-f'];
    if (options.keepAllocation) args.push('-K');
    await run('mkfs.xfs', [...args, '--', target], { timeoutMs: 300_000 });
  }
}

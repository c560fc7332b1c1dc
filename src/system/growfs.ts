import type { FsType } from '../core/fs-type.js';
import { CommandError, run } from './exec.js';

/** Grows a mounted filesystem to fill its (already enlarged) block device. */
export async function growMounted(fsType: FsType, device: string, mountPoint: string): Promise<void> {
  if (fsType === 'xfs') {
    await run('xfs_growfs', ['--', mountPoint], { timeoutMs: 600_000 });
    return;
  }
  try {
    await run('resize2fs', ['--', device], { timeoutMs: 600_000 });
  } catch (err) {
    // The kernel's online ext4 resize needs CAP_SYS_RESOURCE, which some hosts drop even for root.
    if (err instanceof CommandError && err.stderr.includes('Permission denied')) {
      throw new Error(
        'online ext4 resize needs CAP_SYS_RESOURCE, which loopvol lacks on this host: stop what uses the volume and run the resize again (an unmounted volume is grown offline)',
      );
    }
    throw err;
  }
}

/**
 * Grows an unmounted ext4 filesystem in an image file. resize2fs wants a fresh check first;
 * e2fsck -p repairs only what is safe without asking (exit 1 says it did).
 */
export async function growUnmountedExt4(target: string): Promise<void> {
  await run('e2fsck', ['-f', '-p', '--', target], { timeoutMs: 600_000, alsoSuccess: [1] });
  await run('resize2fs', ['--', target], { timeoutMs: 600_000 });
}

/** Makes the kernel re-read the size of a loop device's backing file after it grew. */
export async function refreshLoopCapacity(device: string): Promise<void> {
  await run('losetup', ['--set-capacity', device]);
}

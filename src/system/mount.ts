import { run } from './exec.js';

export type FsType = 'ext4' | 'xfs';

/**
 * Mounts a block device; `nosuid,nodev` because volume content comes from untrusted containers.
 * `extraOptions` are fixed strings chosen by loopvol, never user input.
 */
export async function mountDevice(
  device: string,
  mountPoint: string,
  fsType: FsType,
  extraOptions: readonly string[] = [],
): Promise<void> {
  const options = ['nosuid', 'nodev', ...extraOptions].join(',');
  await run('mount', ['-t', fsType, '-o', options, '--', device, mountPoint], { timeoutMs: 120_000 });
}

export async function unmount(mountPoint: string): Promise<void> {
  await run('umount', ['--', mountPoint], { timeoutMs: 120_000 });
}

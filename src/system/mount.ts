import { run } from './exec.js';

export type FsType = 'ext4' | 'xfs';

/** Mounts a block device; `nosuid,nodev` because volume content comes from untrusted containers. */
export async function mountDevice(device: string, mountPoint: string, fsType: FsType): Promise<void> {
  await run('mount', ['-t', fsType, '-o', 'nosuid,nodev', '--', device, mountPoint], { timeoutMs: 120_000 });
}

export async function unmount(mountPoint: string): Promise<void> {
  await run('umount', ['--', mountPoint], { timeoutMs: 120_000 });
}

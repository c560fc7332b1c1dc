import { run } from './exec.js';

export type FsType = 'ext4' | 'xfs';

/** Every volume is mounted with these: its content comes from untrusted containers. */
export const UNTRUSTED_CONTENT_OPTIONS = ['nosuid', 'nodev'] as const;

/** Mounts a block device with mount(8); `options` are fixed strings or allowlisted, never raw input. */
export async function mountDevice(
  device: string,
  mountPoint: string,
  fsType: FsType,
  options: readonly string[],
): Promise<void> {
  const opts = options.length > 0 ? ['-o', options.join(',')] : [];
  await run('mount', ['-t', fsType, ...opts, '--', device, mountPoint], { timeoutMs: 120_000 });
}

export async function unmount(mountPoint: string): Promise<void> {
  await run('umount', ['--', mountPoint], { timeoutMs: 120_000 });
}

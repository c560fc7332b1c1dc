import type { FsType } from '../core/fs-type.js';
import { run } from './exec.js';

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

/**
 * A bind is made read-only by a remount of the bind alone (the filesystem stays as it is); a
 * read-only mount also never updates access times, so reading through it writes nothing.
 */
export const BIND_READ_ONLY_OPTIONS = ['ro', ...UNTRUSTED_CONTENT_OPTIONS, 'noexec'] as const;

/** mount(8)'s two steps of a read-only bind of `source` on `target`; a bind left writable is undone. */
export async function bindReadOnly(source: string, target: string): Promise<void> {
  await run('mount', ['--bind', '--', source, target], { timeoutMs: 120_000 });
  try {
    await run('mount', ['-o', `remount,bind,${BIND_READ_ONLY_OPTIONS.join(',')}`, '--', target], {
      timeoutMs: 120_000,
    });
  } catch (err) {
    await unmount(target);
    throw err;
  }
}

export async function unmount(mountPoint: string): Promise<void> {
  await run('umount', ['--', mountPoint], { timeoutMs: 120_000 });
}

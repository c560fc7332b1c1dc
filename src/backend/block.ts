import { chmod, chown, lstat, mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FilesystemDamaged } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import type { FsType } from '../core/fs-type.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumePaths } from '../state/layout.js';
import { ext4Unclean } from '../system/ext4-state.js';
import { readFilesystemHead } from '../system/fs-head.js';
import { checkFilesystem, looksDamaged, preenExt4 } from '../system/fsck.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { UNTRUSTED_CONTENT_OPTIONS } from '../system/mount.js';
import type { Preened } from './backend.js';

/**
 * Before a filesystem nothing has open is mounted: an ext4 left uncleanly (the host or loopvol
 * died while it was mounted, or the kernel recorded errors) gets e2fsck -p, as a boot would give
 * it. What preen cannot fix safely is refused (FilesystemDamaged). xfs replays its log at mount,
 * so it is checked only when the mount fails (see mountVolume).
 */
export async function preenIfUnclean(
  target: string,
  fs: FsType,
  head = readFilesystemHead(target),
): Promise<Preened | undefined> {
  const reason = fs === 'ext4' ? ext4Unclean(head) : undefined;
  if (!reason) return undefined;
  const report = await preenExt4(target);
  if (!report.clean) {
    throw new FilesystemDamaged(
      `${reason}, and ${report.command} could not repair it safely (exit ${report.exitCode})`,
      report.output,
    );
  }
  return { reason, report };
}

/**
 * Mounts a volume's block device on its mountpoint. With `prepareRoot`, also empties the new
 * filesystem's root (mkfs.ext4 leaves lost+found, which stops dockerd copying image content in)
 * and sets its owner and mode. `mountOptions` are the backend's own additions.
 */
export async function mountVolume(
  kernel: KernelOps,
  device: string,
  paths: VolumePaths,
  spec: VolumeSpec,
  prepareRoot: boolean,
  mountOptions: readonly string[] = [],
) {
  try {
    await kernel.mount(device, paths.mountPoint, spec.fs, [
      ...UNTRUSTED_CONTENT_OPTIONS,
      ...mountOptions,
      ...spec.mountOptions,
    ]);
  } catch (err) {
    const message = (err as Error).message;
    if (!looksDamaged(message)) throw err;
    // The kernel found the filesystem damaged: a read-only check says how, for the operator.
    const report = await checkFilesystem(device, spec.fs, false).catch(() => undefined);
    throw new FilesystemDamaged(message, report?.output ?? []);
  }
  crashPoint('mount:mounted');
  // A read-only volume's root cannot be prepared: it is served as its filesystem has it.
  if (prepareRoot && !spec.mountOptions.includes('ro')) {
    try {
      await prepareRootDir(paths.mountPoint, spec);
    } catch (err) {
      // Leave nothing mounted that the caller will not record.
      await kernel.unmount(paths.mountPoint).catch(() => undefined);
      throw err;
    }
  }
  crashPoint('mount:root-prepared');
}

async function prepareRootDir(root: string, spec: VolumeSpec): Promise<void> {
  try {
    await rmdir(join(root, 'lost+found'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await chown(root, spec.uid, spec.gid);
  await chmod(root, spec.mode);
}

/**
 * Creates the mountpoint at a volume's first Mount, so a Create never leaves one behind, and checks
 * that what is there is a plain directory (a planted symlink is refused, never followed).
 */
export async function ensureMountPoint(path: string): Promise<void> {
  try {
    await mkdir(path, { mode: 0o755 });
  } catch (err) {
    // EEXIST: checked below. ENOENT: the volume's directory is gone, which assertPlain reports.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOENT') throw err;
  }
  await assertPlain(path, 'directory');
}

/** Refuses a symlink or the wrong kind of file where the plugin expects its own, never following it. */
export async function assertPlain(path: string, kind: 'file' | 'directory'): Promise<void> {
  let info: Awaited<ReturnType<typeof lstat>>;
  try {
    info = await lstat(path);
  } catch (err) {
    throw new Error(
      `${path} is missing (${(err as NodeJS.ErrnoException).code}): restore it from backup or remove the volume`,
    );
  }
  const ok = kind === 'file' ? info.isFile() : info.isDirectory();
  if (!ok) throw new Error(`${path} is not a plain ${kind} (symlink or replaced?): refusing to use it`);
}

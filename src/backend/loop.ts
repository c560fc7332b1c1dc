import { chmod, chown, lstat, mkdir, open, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint } from '../faults.js';
import type { VolumePaths } from '../state/layout.js';
import { run } from '../system/exec.js';
import { attachLoop, detachLoop, loopsFor } from '../system/losetup.js';
import { makeFilesystem } from '../system/mkfs.js';
import { mountDevice, unmount } from '../system/mount.js';
import { mountAt } from '../system/mountinfo.js';
import { KeyedLock } from '../volume/keyed-lock.js';
import type { VolumeSpec } from '../volume/options.js';

/** What the kernel says about one volume right now. */
export interface KernelState {
  mounted: boolean;
  /** The loop device backed by the volume's image, when one is attached. */
  device: string | undefined;
}

/**
 * Loop-backed volumes: an image file formatted in place, attached to a loop device and mounted on
 * demand. Everything here is idempotent and reads its starting point from the kernel, so a retry
 * after a crash converges instead of stacking a second loop device or mount.
 */
export class LoopBackend {
  /** `losetup --find` picks the first free device; two at once may pick the same one. */
  private readonly attachLock = new KeyedLock();

  /** Creates the image and its filesystem; nothing is attached or mounted. */
  async provision(paths: VolumePaths, spec: VolumeSpec): Promise<void> {
    if (spec.sparse) {
      const handle = await open(paths.image, 'wx', 0o600);
      try {
        await handle.truncate(spec.sizeBytes);
      } finally {
        await handle.close();
      }
    } else {
      await run('fallocate', ['--length', String(spec.sizeBytes), '--', paths.image]);
    }
    crashPoint('create:image');
    await makeFilesystem(paths.image, { fsType: spec.fs, keepAllocation: !spec.sparse });
    crashPoint('create:formatted');
    await mkdir(paths.mountPoint, { mode: 0o755 });
  }

  async inspect(paths: VolumePaths): Promise<KernelState> {
    const [mount, devices] = await Promise.all([mountAt(paths.mountPoint), loopsFor(paths.image)]);
    return { mounted: mount !== undefined, device: devices[0] };
  }

  /**
   * Attaches and mounts the volume unless it already is. With `prepareRoot`, also empties the new
   * filesystem's root (mkfs.ext4 leaves lost+found, which stops dockerd copying image content in)
   * and sets its owner and mode.
   */
  async activate(paths: VolumePaths, spec: VolumeSpec, prepareRoot: boolean): Promise<KernelState> {
    await assertPlain(paths.image, 'file');
    await assertPlain(paths.mountPoint, 'directory');
    const state = await this.inspect(paths);
    if (state.mounted) return state;
    let device = state.device;
    const attachedHere = device === undefined;
    if (device === undefined) {
      device = await this.attachLock.run('attach', () => attachLoop(paths.image));
    }
    crashPoint('mount:attached');
    try {
      await mountDevice(device, paths.mountPoint, spec.fs);
    } catch (err) {
      if (attachedHere) await detachLoop(device).catch(() => undefined);
      throw err;
    }
    crashPoint('mount:mounted');
    if (prepareRoot) await prepareRootDir(paths.mountPoint, spec);
    crashPoint('mount:root-prepared');
    return { mounted: true, device };
  }

  /** Unmounts and detaches; a no-op for a volume that is neither. */
  async deactivate(paths: VolumePaths): Promise<void> {
    if (await mountAt(paths.mountPoint)) await unmount(paths.mountPoint);
    crashPoint('unmount:unmounted');
    for (const device of await loopsFor(paths.image)) await detachLoop(device);
    crashPoint('unmount:detached');
  }
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

/** Refuses a symlink or the wrong kind of file where the plugin expects its own, never following it. */
async function assertPlain(path: string, kind: 'file' | 'directory'): Promise<void> {
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

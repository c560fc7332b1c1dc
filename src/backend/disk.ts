import { realpath } from 'node:fs/promises';
import { VolumeError } from '../core/errors.js';
import type { VolumeSpec } from '../core/options.js';
import { formatSize } from '../core/size.js';
import { crashPoint } from '../faults.js';
import type { VolumePaths } from '../state/layout.js';
import { probeSignature, wipeSignatures } from '../system/blkid.js';
import { blockDeviceSize, isBlockDevice } from '../system/blockdev.js';
import { CommandError } from '../system/exec.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { makeFilesystem } from '../system/mkfs.js';
import { readMounts } from '../system/mountinfo.js';
import { isMountPoint } from '../system/mountpoint.js';
import { retryFor } from '../system/retry.js';
import type { BackedVolume, Backend, KernelState, Provisioned } from './backend.js';
import { ensureMountPoint, mountVolume, preenIfUnclean } from './block.js';

const MANAGED_FS = new Set(['ext4', 'xfs']);

/**
 * Whole-disk volumes: the operator names a pool of block devices; each volume owns one exclusively,
 * with no loop layer in the I/O path. A disk is formatted only when it holds no signature at all,
 * so a pool disk that already carries a filesystem keeps its data. Remove wipes the signatures so
 * the next owner never sees the previous one's files.
 */
export class DiskBackend implements Backend {
  constructor(
    private readonly pool: readonly string[],
    private readonly kernel: KernelOps,
  ) {}

  async startup(): Promise<void> {}

  async idle(): Promise<void> {}

  async provision(_paths: VolumePaths, spec: VolumeSpec, claimed: ReadonlySet<string>): Promise<Provisioned> {
    if (this.pool.length === 0) {
      throw new VolumeError(
        'no disk pool is configured: start loopvol with --disk-pool /dev/sdX[,/dev/sdY...]',
        400,
      );
    }
    const disk = await this.pickDisk(spec, claimed);
    let fs = await probeSignature(disk);
    if (fs === undefined) {
      await makeFilesystem(disk, spec.fs, 'device');
      fs = spec.fs;
    } else if (!MANAGED_FS.has(fs)) {
      throw new VolumeError(
        `pool disk ${disk} holds ${fs}, which loopvol does not mount: wipe it (wipefs -a ${disk}) or take it out of the pool`,
      );
    }
    crashPoint('create:formatted');
    return { sizeBytes: await blockDeviceSize(disk), fs: fs as VolumeSpec['fs'], disk };
  }

  /** The first pool disk that is present, unclaimed, not mounted anywhere, and big enough. */
  private async pickDisk(spec: VolumeSpec, claimed: ReadonlySet<string>): Promise<string> {
    const mountedSources = new Set<string>();
    for (const m of await readMounts()) mountedSources.add(await realpath(m.source).catch(() => m.source));
    const reasons: string[] = [];
    for (const disk of this.pool) {
      if (claimed.has(disk)) continue;
      if (!(await isBlockDevice(disk))) {
        reasons.push(`${disk} is not a block device`);
        continue;
      }
      if (mountedSources.has(await realpath(disk))) {
        reasons.push(`${disk} is mounted elsewhere`);
        continue;
      }
      const size = await blockDeviceSize(disk);
      if (spec.sizeBytes > size) {
        reasons.push(`${disk} has only ${formatSize(size)}`);
        continue;
      }
      return disk;
    }
    const why = reasons.length > 0 ? ` (${reasons.join('; ')})` : '';
    throw new VolumeError(
      `no free pool disk${spec.sizeBytes > 0 ? ` of at least ${formatSize(spec.sizeBytes)}` : ''}${why}: add disks to --disk-pool or remove unused disk volumes`,
      409,
    );
  }

  async inspect(
    paths: VolumePaths,
    volume: BackedVolume,
    mounts?: ReadonlySet<string>,
  ): Promise<KernelState> {
    const mounted = mounts ? mounts.has(paths.mountPoint) : isMountPoint(paths.mountPoint);
    return { mounted, device: mounted ? volume.disk : undefined };
  }

  async activate(paths: VolumePaths, volume: BackedVolume, prepareRoot: boolean): Promise<KernelState> {
    const disk = this.owned(volume);
    await ensureMountPoint(paths.mountPoint);
    if (!(await isBlockDevice(disk))) throw new Error(`pool disk ${disk} is missing or not a block device`);
    if (isMountPoint(paths.mountPoint)) return { mounted: true, device: disk };
    crashPoint('mount:attached');
    const preened = await preenIfUnclean(disk, volume.spec.fs);
    await mountVolume(this.kernel, disk, paths, volume.spec, prepareRoot);
    return { mounted: true, device: disk, preened };
  }

  async deactivate(paths: VolumePaths): Promise<void> {
    if (isMountPoint(paths.mountPoint)) await this.kernel.unmount(paths.mountPoint);
    crashPoint('unmount:unmounted');
  }

  async grow(): Promise<void> {
    throw new VolumeError('a disk volume is a whole disk and cannot be resized', 400);
  }

  /**
   * Returns the disk to the pool blank. Right after an unmount the filesystem may still be alive
   * for a moment (a container being created copied the mount tree), so a busy disk is retried.
   */
  async release(volume: BackedVolume): Promise<void> {
    const disk = this.owned(volume);
    if (!(await isBlockDevice(disk))) return;
    await retryFor(
      5_000,
      () => wipeSignatures(disk),
      (err) => err instanceof CommandError && err.stderr.includes('Device or resource busy'),
    );
  }

  checkTarget(_paths: VolumePaths, volume: BackedVolume): string {
    return this.owned(volume);
  }

  private owned(volume: BackedVolume): string {
    if (!volume.disk) throw new Error('volume record names no disk');
    return volume.disk;
  }
}

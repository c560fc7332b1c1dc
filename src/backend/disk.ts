import type { Logger } from 'pino';
import { VolumeError } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import type { VolumeSpec } from '../core/options.js';
import { formatSize } from '../core/size.js';
import { type DiskClaim, saveDiskClaim } from '../state/disk-claim.js';
import type { VolumePaths } from '../state/layout.js';
import { probeSignature, wipeSignatures } from '../system/blkid.js';
import { blockDeviceSize, isBlockDevice } from '../system/blockdev.js';
import { BY_ID_DIR, deviceBehind, stableNameOf } from '../system/disk-id.js';
import { CommandError } from '../system/exec.js';
import { filesystemUuidIn, readFilesystemHead } from '../system/fs-head.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { makeFilesystem } from '../system/mkfs.js';
import { readMounts } from '../system/mountinfo.js';
import { isMountPoint } from '../system/mountpoint.js';
import { retryFor } from '../system/retry.js';
import type { BackedVolume, Backend, HeldDisk, KernelState, Provisioned } from './backend.js';
import { ensureMountPoint, mountVolume, preenIfUnclean } from './block.js';
import { resolvePool } from './disk-pool.js';

const MANAGED_FS = new Set(['ext4', 'xfs']);

/** The ext4 or xfs filesystem on a device now, from its superblock (no blkid cache). */
function filesystemOn(device: string): { fs: VolumeSpec['fs']; uuid: string } | undefined {
  const head = readFilesystemHead(device);
  for (const fs of ['ext4', 'xfs'] as const) {
    const uuid = filesystemUuidIn(head, fs);
    if (uuid) return { fs, uuid };
  }
  return undefined;
}

/**
 * Whole-disk volumes: the operator names a pool of block devices; each volume owns one exclusively,
 * with no loop layer in the I/O path. A disk is formatted only when it holds no signature at all,
 * so a pool disk that already carries a filesystem keeps its data. Remove wipes the signatures so
 * the next owner never sees the previous one's files.
 *
 * A volume knows its disk by stable name (/dev/disk/by-id) and by the UUID of its filesystem:
 * Mount, Remove and fsck check that the name leads to that filesystem now, so a link that leads
 * elsewhere (a disk moved, a udev rule changed) is refused instead of serving or wiping the wrong disk.
 */
export class DiskBackend implements Backend {
  private resolved: Promise<readonly string[]> | undefined;
  private held: () => readonly HeldDisk[] = () => [];

  constructor(
    private readonly entries: readonly string[],
    private readonly kernel: KernelOps,
    private readonly log?: Logger,
  ) {}

  /** Resolves the pool to stable names (see resolvePool); a pool it must refuse fails start-up. */
  async startup(): Promise<void> {
    await this.pool();
  }

  private pool(): Promise<readonly string[]> {
    this.resolved ??= resolvePool(this.entries, this.log);
    return this.resolved;
  }

  knowHeld(held: () => readonly HeldDisk[]): void {
    this.held = held;
  }

  async idle(): Promise<void> {}

  async provision(paths: VolumePaths, spec: VolumeSpec): Promise<Provisioned> {
    const pool = await this.pool();
    if (pool.length === 0) {
      throw new VolumeError(
        `no disk pool is configured: start loopvol with --disk-pool ${BY_ID_DIR}/NAME[,${BY_ID_DIR}/NAME...]`,
        'invalid',
      );
    }
    const { disk, device } = await this.pickDisk(pool, spec);
    let fs = await probeSignature(device);
    if (fs === undefined) {
      await makeFilesystem(device, spec.fs, 'device');
      fs = spec.fs;
    } else if (!MANAGED_FS.has(fs)) {
      throw new VolumeError(
        `pool disk ${disk} holds ${fs}, which loopvol does not mount: wipe it (wipefs -a ${disk}) or take it out of the pool`,
      );
    }
    crashPoint('create:formatted');
    const fsUuid = filesystemOn(device)?.uuid;
    if (!fsUuid) throw new Error(`pool disk ${disk} (${device}) shows no ${fs} filesystem UUID`);
    // Beside the record, so that the disk stays held even if volume.json is ever damaged.
    await saveDiskClaim(paths, { disk, fsUuid });
    return { sizeBytes: await blockDeviceSize(device), fs: fs as VolumeSpec['fs'], disk, fsUuid };
  }

  /**
   * The first pool disk that is present, held by no volume (by name, by the device the name leads
   * to, or by the filesystem on it), not mounted anywhere, and big enough.
   */
  private async pickDisk(
    pool: readonly string[],
    spec: VolumeSpec,
  ): Promise<{ disk: string; device: string }> {
    const held = this.held();
    const heldNames = new Set(held.map((h) => h.disk));
    const heldDevices = new Set(await Promise.all(held.map((h) => deviceBehind(h.disk))));
    const mountedSources = new Set<string>();
    for (const m of await readMounts()) mountedSources.add((await deviceBehind(m.source)) ?? m.source);
    const reasons: string[] = [];
    for (const disk of pool) {
      if (heldNames.has(disk)) continue;
      const device = await deviceBehind(disk);
      if (!device || !(await isBlockDevice(device))) {
        reasons.push(`${disk} is not a block device`);
        continue;
      }
      if (heldDevices.has(device)) continue;
      if (mountedSources.has(device)) {
        reasons.push(`${disk} is mounted elsewhere`);
        continue;
      }
      let owner: HeldDisk | undefined;
      try {
        owner = this.owner(filesystemOn(device)?.uuid);
      } catch (err) {
        reasons.push(`${disk} cannot be read (${(err as Error).message})`);
        continue;
      }
      if (owner) {
        reasons.push(`${disk} holds the filesystem of volume ${owner.volume}`);
        continue;
      }
      const size = await blockDeviceSize(device);
      if (spec.sizeBytes > size) {
        reasons.push(`${disk} has only ${formatSize(size)}`);
        continue;
      }
      return { disk, device };
    }
    const why = reasons.length > 0 ? ` (${reasons.join('; ')})` : '';
    throw new VolumeError(
      `no free pool disk${spec.sizeBytes > 0 ? ` of at least ${formatSize(spec.sizeBytes)}` : ''}${why}: add disks to --disk-pool or remove unused disk volumes`,
      'conflict',
    );
  }

  /** The volume other than `self` whose filesystem has this UUID. */
  private owner(fsUuid: string | undefined, self?: string): HeldDisk | undefined {
    if (fsUuid === undefined) return undefined;
    return this.held().find((h) => h.fsUuid === fsUuid && h.volume !== self);
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
    const device = await this.present(disk);
    if (isMountPoint(paths.mountPoint)) return { mounted: true, device: disk };
    await this.check(volume, device, 'not mounting it');
    crashPoint('mount:attached');
    // The device checked, not the name: the link could be re-made between the check and the mount.
    const preened = await preenIfUnclean(device, volume.spec.fs);
    await mountVolume(this.kernel, device, paths, volume.spec, prepareRoot);
    return { mounted: true, device: disk, preened };
  }

  /**
   * Refuses a disk whose filesystem is not the volume's. A record from before stable names has no
   * UUID to compare: its disk must hold a filesystem of the volume's type that no other volume has.
   */
  private async check(volume: BackedVolume, device: string, refusing: string): Promise<void> {
    const found = filesystemOn(device);
    const owner = this.owner(found?.uuid, volume.name);
    const fits = volume.fsUuid ? found?.uuid === volume.fsUuid : found?.fs === volume.spec.fs && !owner;
    if (fits) return;
    const holds = found
      ? `${found.fs} filesystem ${found.uuid}${owner ? ` (volume ${owner.volume}'s)` : ''}`
      : 'no ext4 or xfs filesystem';
    const own = volume.fsUuid ? `, not its own ${volume.fsUuid}` : '';
    const where = volume.fsUuid ? await this.locate(volume.fsUuid) : undefined;
    const whose = `volume ${volume.name ?? ''}'s`;
    const moved = where ? `; ${whose} filesystem is on ${where}` : '';
    throw new VolumeError(
      `${whose} disk ${volume.disk} (now ${device}) holds ${holds}${own}${moved}: ${refusing}; check where the links under ${BY_ID_DIR} lead (ls -l ${BY_ID_DIR})`,
      'conflict',
    );
  }

  /** The pool disk that holds the filesystem with this UUID now, to say where a volume's went. */
  private async locate(fsUuid: string): Promise<string | undefined> {
    for (const disk of await this.pool()) {
      const device = await deviceBehind(disk);
      if (!device || !(await isBlockDevice(device))) continue;
      try {
        if (filesystemOn(device)?.uuid === fsUuid) return `${disk} (now ${device})`;
      } catch {}
    }
    return undefined;
  }

  async deactivate(paths: VolumePaths): Promise<void> {
    if (isMountPoint(paths.mountPoint)) await this.kernel.unmount(paths.mountPoint);
    crashPoint('unmount:unmounted');
  }

  async grow(): Promise<void> {
    throw new VolumeError('a disk volume is a whole disk and cannot be resized', 'invalid');
  }

  /**
   * Returns the disk to the pool blank, once it is checked to hold this volume's filesystem. A
   * blank disk is a Remove interrupted after its wipe: nothing is left to do. Right after an
   * unmount the filesystem may still be alive for a moment (a container being created copied the
   * mount tree), so a busy disk is retried.
   */
  async release(volume: BackedVolume): Promise<void> {
    const device = await deviceBehind(this.owned(volume));
    if (!device || !(await isBlockDevice(device))) return;
    if ((await probeSignature(device)) === undefined) return;
    await this.check(volume, device, 'not wiping it');
    await retryFor(
      5_000,
      () => wipeSignatures(device),
      (err) => err instanceof CommandError && err.stderr.includes('Device or resource busy'),
    );
  }

  /**
   * Names the disk of a record from before stable names by the pool entry (or else any by-id
   * link) that leads to the device the kernel name leads to now, and records the UUID of the
   * filesystem there, when that filesystem is of the volume's type and no other volume's.
   */
  async upgrade(paths: VolumePaths, volume: BackedVolume): Promise<DiskClaim | undefined> {
    if (!volume.disk || volume.fsUuid) return undefined;
    const keeps =
      'its record keeps the kernel name until a start-up can upgrade it, and Mount and Remove check only that the disk holds a filesystem of its type that no other volume has';
    const device = await deviceBehind(volume.disk);
    if (!device || !(await isBlockDevice(device)))
      throw new Error(`its disk ${volume.disk} is missing: ${keeps}`);
    const found = filesystemOn(device);
    if (found?.fs !== volume.spec.fs)
      throw new Error(`its disk ${volume.disk} holds no ${volume.spec.fs} filesystem: ${keeps}`);
    const fsUuid = found.uuid;
    const owner = this.owner(fsUuid, volume.name);
    if (owner)
      throw new Error(
        `its disk ${volume.disk} holds volume ${owner.volume}'s filesystem ${fsUuid}: ${keeps}`,
      );
    let disk: string | undefined;
    for (const entry of await this.pool()) {
      if ((await deviceBehind(entry)) !== device) continue;
      disk = entry;
      break;
    }
    disk ??= await stableNameOf(device);
    if (!disk) throw new Error(`its disk ${volume.disk} has no name under ${BY_ID_DIR}: ${keeps}`);
    await saveDiskClaim(paths, { disk, fsUuid });
    return { disk, fsUuid };
  }

  /** The disk, once checked to hold the volume's filesystem: a repair must not run on another's. */
  async checkTarget(_paths: VolumePaths, volume: BackedVolume): Promise<string> {
    const device = await this.present(this.owned(volume));
    await this.check(volume, device, 'not checking it');
    return device;
  }

  /** The device a pool disk's name leads to now. */
  private async present(disk: string): Promise<string> {
    const device = await deviceBehind(disk);
    if (!device || !(await isBlockDevice(device)))
      throw new Error(`pool disk ${disk} is missing or not a block device`);
    return device;
  }

  private owned(volume: BackedVolume): string {
    if (!volume.disk) throw new Error('volume record names no disk');
    return volume.disk;
  }
}

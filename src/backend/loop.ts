import { truncate } from 'node:fs/promises';
import type { ImageSource } from '../core/clone.js';
import { FilesystemDamaged } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import { KeyedLock } from '../core/keyed-lock.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumePaths } from '../state/layout.js';
import { createSparse, preallocate, refillAllocation, writeZeros } from '../system/allocate.js';
import { filesystemBlockSize } from '../system/fs-geometry.js';
import { readFilesystemHead } from '../system/fs-head.js';
import { newFilesystemUuid } from '../system/fs-uuid.js';
import { checkFilesystem } from '../system/fsck.js';
import { growMounted, growUnmountedExt4, refreshLoopCapacity } from '../system/growfs.js';
import type { KernelOps } from '../system/kernel-ops.js';
import type { LoopAttachOptions } from '../system/loop-options.js';
import { passFlushes } from '../system/loop-sysfs.js';
import { makeFilesystem } from '../system/mkfs.js';
import { UNTRUSTED_CONTENT_OPTIONS } from '../system/mount.js';
import { isMountPoint } from '../system/mountpoint.js';
import { retryFor } from '../system/retry.js';
import type { BackedVolume, Backend, KernelState, Preened, Provisioned } from './backend.js';
import { assertPlain, ensureMountPoint, mountVolume, preenIfUnclean } from './block.js';
import { LoopIndex } from './loop-index.js';
import { SPARE_ROOT, type SparePool } from './spares.js';

/**
 * ext4 on a preallocated image skips the kernel's lazy inode-table zeroing, whose zero-out reaches
 * the image through the loop device as hole punches. It has nothing to do there: mkfs zeroed the
 * tables, and the groups a resize adds sit on freshly fallocated blocks, which read as zeros.
 */
const mountOptions = (spec: VolumeSpec) => (!spec.sparse && spec.fs === 'ext4' ? ['noinit_itable'] : []);

const formatTarget = (spec: VolumeSpec) =>
  spec.prealloc === 'zero' ? 'zeroed-image' : spec.sparse ? 'sparse-image' : 'preallocated-image';

/** How long a Mount keeps retrying while a loop device of its image is being torn down. */
const TEARDOWN_WAIT_MS = 5_000;

/** How a LoopBackend works; every field has a default. */
export interface LoopBackendOptions {
  /** How loop devices serve images (default: direct I/O, 512-byte blocks). */
  loop?: LoopAttachOptions;
  /** Images formatted ahead of time for Create; absent: every Create runs mkfs. */
  spares?: SparePool;
}

/** Loop-backed volumes: an image file formatted in place, attached to a loop device and mounted on demand. */
export class LoopBackend implements Backend {
  /** `losetup --find` picks the first free device; two at once may pick the same one. */
  private readonly attachLock = new KeyedLock();
  private readonly loops = new LoopIndex();

  private readonly loopOptions: LoopAttachOptions;
  private readonly spares: SparePool | undefined;

  constructor(
    private readonly kernel: KernelOps,
    options: LoopBackendOptions = {},
  ) {
    this.loopOptions = options.loop ?? { directIo: true };
    this.spares = options.spares;
  }

  async startup(): Promise<void> {
    await this.spares?.start();
  }

  async idle(): Promise<void> {
    await this.spares?.idle();
  }

  /**
   * Creates the image and formats it as a file: no loop device exists until the first Mount.
   * A sparse image of a size formatted ahead of time is taken from the spares instead.
   */
  async provision(paths: VolumePaths, spec: VolumeSpec, source?: ImageSource): Promise<Provisioned> {
    return this.working(() => this.provisionNow(paths, spec, source));
  }

  private async provisionNow(
    paths: VolumePaths,
    spec: VolumeSpec,
    source?: ImageSource,
  ): Promise<Provisioned> {
    if (source) return this.provisionClone(paths, spec, source);
    // Spares are formatted without the encrypt feature.
    if (spec.sparse && !spec.encrypt && (await this.spares?.place(spec, paths.image))) {
      crashPoint('create:image');
      crashPoint('create:formatted');
      const rootPrepared =
        spec.uid === SPARE_ROOT.uid && spec.gid === SPARE_ROOT.gid && spec.mode === SPARE_ROOT.mode;
      return { sizeBytes: spec.sizeBytes, fs: spec.fs, rootPrepared };
    }
    if (spec.prealloc === 'zero') await writeZeros(paths.image, spec.sizeBytes);
    else if (spec.sparse) await createSparse(paths.image, spec.sizeBytes);
    else await preallocate(paths.image, spec.sizeBytes);
    crashPoint('create:image');
    await makeFilesystem(
      paths.image,
      spec.fs,
      formatTarget(spec),
      undefined,
      spec.encrypt ? ['encrypt'] : [],
    );
    crashPoint('create:formatted');
    return { sizeBytes: spec.sizeBytes, fs: spec.fs };
  }

  /**
   * A clone: the source's image copied in (a reflink where the data root allows), given a new
   * filesystem UUID, grown when the clone asks for more than the source had. Its root is the
   * source's, owner and content: nothing to prepare at the first Mount. A restore from a backup is
   * checked first, and keeps its UUID unless another local volume has it.
   */
  private async provisionClone(
    paths: VolumePaths,
    spec: VolumeSpec,
    source: ImageSource,
  ): Promise<Provisioned> {
    const copied = await source(paths.image);
    crashPoint('create:image');
    if (copied.fs === 'xfs') await this.replayXfsLog(paths);
    if (copied.restored) {
      const check = await checkFilesystem(paths.image, copied.fs, false);
      if (!check.clean) {
        throw new FilesystemDamaged(
          `the restored ${copied.fs} filesystem is damaged (${check.command}: exit ${check.exitCode})`,
          check.output,
        );
      }
    }
    if (!copied.restored?.keepUuid) await newFilesystemUuid(paths.image, copied.fs);
    const sizeBytes = Math.max(spec.sizeBytes, copied.sizeBytes);
    const volume = { spec: { ...spec, fs: copied.fs, sizeBytes: copied.sizeBytes } };
    if (sizeBytes > copied.sizeBytes) await this.grow(paths, volume, sizeBytes);
    else if (!spec.sparse) await preallocate(paths.image, sizeBytes);
    crashPoint('create:formatted');
    return {
      sizeBytes,
      fs: copied.fs,
      rootPrepared: true,
      ...(copied.encryption ? { encryption: copied.encryption } : {}),
    };
  }

  /**
   * A copy of a frozen xfs carries a log to replay, and only a mount replays it; its UUID is still
   * the source's, so the mount says nouuid (as for any block-level snapshot of xfs).
   */
  private async replayXfsLog(paths: VolumePaths): Promise<void> {
    await ensureMountPoint(paths.mountPoint);
    const device = await this.attachLock.run('attach', () => this.attach(paths.image, 'xfs'));
    try {
      await this.kernel.mount(device, paths.mountPoint, 'xfs', [...UNTRUSTED_CONTENT_OPTIONS, 'nouuid']);
      await this.kernel.unmount(paths.mountPoint);
    } finally {
      await this.kernel.detachLoop(device);
    }
  }

  /** A few stat calls and sysfs reads for this one volume, however many volumes and mounts the host has. */
  async inspect(
    paths: VolumePaths,
    _volume?: BackedVolume,
    mounts?: ReadonlySet<string>,
  ): Promise<KernelState> {
    const mounted = mounts ? mounts.has(paths.mountPoint) : isMountPoint(paths.mountPoint);
    const loop = await this.loops.find(paths.image);
    return { mounted, device: loop?.device, detaching: loop?.autoclear === true };
  }

  /**
   * Mounts the image's existing loop device when it has one, even one whose detach is pending:
   * the kernel then reuses the filesystem instance still alive there. A second device for the
   * same image would mean a second, independent instance of one filesystem.
   * The kernel tears loop devices down asynchronously (after the last close), so a device seen a
   * moment ago may be mid-teardown and fail the mount; that is retried for a short while, from a
   * fresh look at the kernel, before the error is reported.
   */
  async activate(paths: VolumePaths, volume: BackedVolume, prepareRoot: boolean): Promise<KernelState> {
    return this.working(() => this.activateNow(paths, volume, prepareRoot));
  }

  private async activateNow(
    paths: VolumePaths,
    volume: BackedVolume,
    prepareRoot: boolean,
  ): Promise<KernelState> {
    await assertPlain(paths.image, 'file');
    await ensureMountPoint(paths.mountPoint);
    // Kept across retries: the refill and the check happen once, on the attempt that first attaches.
    let refilledBytes = 0;
    let preened: Preened | undefined;
    let checked = false;
    const attempt = async (): Promise<KernelState> => {
      const state = await this.inspect(paths);
      if (state.mounted) return state;
      const attachedHere = state.device === undefined;
      if (attachedHere && !volume.spec.sparse) refilledBytes += await refillAllocation(paths.image);
      // One read of the filesystem's head serves the check and the attach.
      const head = attachedHere ? readFilesystemHead(paths.image) : undefined;
      // No device: no filesystem instance in the kernel can have the image open, so it can be checked.
      if (head && !checked) {
        preened = await preenIfUnclean(paths.image, volume.spec.fs, head);
        checked = true;
      }
      const device =
        state.device ??
        (await this.attachLock.run('attach', () => this.attach(paths.image, volume.spec.fs, head)));
      crashPoint('mount:attached');
      try {
        await mountVolume(this.kernel, device, paths, volume.spec, prepareRoot, mountOptions(volume.spec));
        return { mounted: true, device, refilledBytes, preened };
      } catch (err) {
        if (attachedHere) await this.kernel.detachLoop(device).catch(() => undefined);
        throw err;
      }
    };
    return retryFor(TEARDOWN_WAIT_MS, attempt, (err) => !(err instanceof FilesystemDamaged));
  }

  /** Attaches with logical blocks no larger than the filesystem's (see filesystemBlockSize). */
  private async attach(
    image: string,
    fs: VolumeSpec['fs'],
    head = readFilesystemHead(image),
  ): Promise<string> {
    const blockSize = this.loopOptions.blockSize || filesystemBlockSize(head, fs);
    const device = await this.kernel.attachLoop(image, {
      ...this.loopOptions,
      ...(blockSize ? { blockSize } : {}),
    });
    try {
      passFlushes(device);
    } catch (err) {
      await this.kernel.detachLoop(device).catch(() => undefined);
      throw new Error(`cannot make ${device} pass flushes on to ${image}: ${(err as Error).message}`);
    }
    this.loops.attached(image, device);
    return device;
  }

  /** A device whose detach is pending is never detached again: the kernel finishes it at its last close. */
  async deactivate(paths: VolumePaths): Promise<void> {
    await this.working(async () => {
      if (isMountPoint(paths.mountPoint)) await this.kernel.unmount(paths.mountPoint);
      crashPoint('unmount:unmounted');
      const loop = await this.loops.find(paths.image);
      if (loop && !loop.autoclear) await this.kernel.detachLoop(loop.device);
      crashPoint('unmount:detached');
    });
  }

  /** Backend work in progress holds off the formatting of spares (see SparePool.during). */
  private working<T>(work: () => Promise<T>): Promise<T> {
    return this.spares ? this.spares.during(work) : work();
  }

  async grow(paths: VolumePaths, volume: BackedVolume, sizeBytes: number): Promise<void> {
    await assertPlain(paths.image, 'file');
    // The growth of a zeroed image is written too; the inode tables the resize then zeroes through
    // the loop device come back as unwritten extents (refilled below): a one-time conversion each.
    if (volume.spec.prealloc === 'zero') await writeZeros(paths.image, sizeBytes);
    else if (volume.spec.sparse) await truncate(paths.image, sizeBytes);
    else await preallocate(paths.image, sizeBytes);
    crashPoint('resize:image');
    const state = await this.inspect(paths);
    if (state.device) await refreshLoopCapacity(state.device);
    crashPoint('resize:capacity');
    if (state.mounted && state.device) {
      await growMounted(volume.spec.fs, state.device, paths.mountPoint);
    } else if (volume.spec.fs === 'ext4') {
      await growUnmountedExt4(paths.image);
    } else {
      // xfs grows only while mounted: mount it for the moment.
      await this.activate(paths, volume, false);
      try {
        const device = (await this.inspect(paths)).device;
        if (!device) throw new Error(`${paths.image} lost its loop device while growing`);
        await growMounted('xfs', device, paths.mountPoint);
      } finally {
        await this.deactivate(paths);
      }
    }
    // Online ext4 growth zeroes the new inode tables through the loop device: hole punches.
    if (!volume.spec.sparse) await preallocate(paths.image, sizeBytes);
    crashPoint('resize:grown');
  }

  async checkTarget(paths: VolumePaths): Promise<string> {
    return paths.image;
  }

  /** The image lives in the volume's directory and goes with it. */
  async release(): Promise<void> {}
}

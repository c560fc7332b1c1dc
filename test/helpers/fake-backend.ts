import { mkdir, truncate, writeFile } from 'node:fs/promises';
import type { BackedVolume, Backend, HeldDisk, KernelState, Provisioned } from '../../src/backend/backend.js';
import type { ImageSource } from '../../src/core/clone.js';
import type { VolumeSpec } from '../../src/core/options.js';
import { saveDiskClaim } from '../../src/state/disk-claim.js';
import type { VolumePaths } from '../../src/state/layout.js';

/**
 * What the kernel holds, in memory: loop devices by image and mounts by mountpoint. It outlives a
 * backend, so a second service built on the same kernel and store is the plugin restarted.
 */
export class FakeKernel {
  /** Image path → device. */
  readonly attached = new Map<string, string>();
  /** Mountpoint → device. */
  readonly mounted = new Map<string, string>();
  private nextDevice = 0;

  /** Attaches `paths`' image, as a loop device left behind by a crash (or by activate). */
  attach(paths: VolumePaths): string {
    let device = this.attached.get(paths.image);
    if (!device) {
      device = `/dev/fakeloop${this.nextDevice++}`;
      this.attached.set(paths.image, device);
    }
    return device;
  }

  /** Attaches and mounts, as a Mount the plugin was killed in before recording it. */
  mount(paths: VolumePaths): string {
    const device = this.attach(paths);
    this.mounted.set(paths.mountPoint, device);
    return device;
  }

  /** Unmounts and detaches behind the plugin's back (a reboot, a manual umount). */
  forget(paths: VolumePaths): void {
    this.mounted.delete(paths.mountPoint);
    this.attached.delete(paths.image);
  }

  state(paths: VolumePaths): KernelState {
    return { mounted: this.mounted.has(paths.mountPoint), device: this.attached.get(paths.image) };
  }
}

/** The Backend methods a test can watch and make fail. */
export type FakeOp = Exclude<keyof Backend, 'knowHeld' | 'upgrade'>;

/** One call the backend received: `volume` is the record's name, or the staged directory in a Create. */
export interface FakeCall {
  op: FakeOp;
  volume: string;
}

/** An error as node's fs and the system wrappers throw them: a message, an errno code. */
export function errnoError(code: string, op: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: fake ${op} failed`), { code, syscall: op });
}

/**
 * An in-memory Backend for the service's unit tests: records every call, can be told to fail an
 * operation, and keeps attach and mount state in a FakeKernel. It touches only files under the data
 * root (a sparse image, the mountpoint directory), never loop devices, mounts or system tools.
 */
export class FakeBackend implements Backend {
  readonly calls: FakeCall[] = [];
  private readonly failures = new Map<FakeOp, { error: Error; times: number }[]>();
  private readonly gates = new Map<FakeOp, Promise<void>>();
  private held: () => readonly HeldDisk[] = () => [];
  private nextDisk = 0;

  constructor(
    readonly kernel = new FakeKernel(),
    /** `disk`: provision names a pool disk and filesystem UUID, as the disk backend does. */
    readonly kind: VolumeSpec['backend'] = 'loop',
  ) {}

  /**
   * Makes the next `times` calls of `op` throw `error` (an errno code such as 'ENOSPC', or an
   * Error), after recording them. Failures queue in the order they were asked for.
   */
  fail(op: FakeOp, error: string | Error, times = 1): void {
    const err = typeof error === 'string' ? errnoError(error, op) : error;
    this.failures.set(op, [...(this.failures.get(op) ?? []), { error: err, times }]);
  }

  /** The calls of `op`, by volume. */
  callsOf(op: FakeOp): string[] {
    return this.calls.filter((c) => c.op === op).map((c) => c.volume);
  }

  /** The disks the service said are held (disk volumes). */
  heldDisks(): readonly HeldDisk[] {
    return this.held();
  }

  knowHeld(held: () => readonly HeldDisk[]): void {
    this.held = held;
  }

  async startup(): Promise<void> {
    await this.enter('startup', '');
  }

  async idle(): Promise<void> {
    await this.enter('idle', '');
  }

  async provision(paths: VolumePaths, spec: VolumeSpec, source?: ImageSource): Promise<Provisioned> {
    await this.enter('provision', paths.dir);
    if (source) {
      const copied = await source(paths.image);
      return { sizeBytes: Math.max(spec.sizeBytes, copied.sizeBytes), fs: copied.fs, rootPrepared: true };
    }
    if (this.kind === 'disk') {
      const n = this.nextDisk++;
      const claim = {
        disk: `/dev/disk/by-id/fake-disk-${n}`,
        fsUuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      };
      // As the disk backend does: the claim keeps the disk held should volume.json become unreadable.
      await saveDiskClaim(paths, claim);
      return { sizeBytes: spec.sizeBytes, fs: spec.fs, ...claim };
    }
    // A sparse file: the service measures the image (and Create's leftovers are real files).
    await writeFile(paths.image, '');
    await truncate(paths.image, spec.sizeBytes);
    return { sizeBytes: spec.sizeBytes, fs: spec.fs };
  }

  async inspect(paths: VolumePaths, volume: BackedVolume): Promise<KernelState> {
    await this.enter('inspect', nameOf(paths, volume));
    return this.kernel.state(paths);
  }

  async activate(paths: VolumePaths, volume: BackedVolume): Promise<KernelState> {
    await this.enter('activate', nameOf(paths, volume));
    // Get reads the mounted filesystem's usage at the mountpoint: it must exist.
    await mkdir(paths.mountPoint, { recursive: true });
    this.kernel.mount(paths);
    return this.kernel.state(paths);
  }

  async deactivate(paths: VolumePaths, volume: BackedVolume): Promise<void> {
    await this.enter('deactivate', nameOf(paths, volume));
    this.kernel.forget(paths);
  }

  async grow(paths: VolumePaths, volume: BackedVolume, sizeBytes: number): Promise<void> {
    await this.enter('grow', nameOf(paths, volume));
    if (this.kind === 'loop') await truncate(paths.image, sizeBytes);
  }

  async checkTarget(paths: VolumePaths, volume: BackedVolume): Promise<string> {
    await this.enter('checkTarget', nameOf(paths, volume));
    return volume.disk ?? paths.image;
  }

  async release(volume: BackedVolume): Promise<void> {
    await this.enter('release', volume.name ?? '');
  }

  /**
   * Makes calls of `op` wait (after being recorded) until the returned function is called, so a
   * test can start another request while one is inside the backend.
   */
  hold(op: FakeOp): () => void {
    let open = () => {};
    this.gates.set(
      op,
      new Promise<void>((resolve) => {
        open = resolve;
      }),
    );
    return () => {
      this.gates.delete(op);
      open();
    };
  }

  /** Records the call, waits at its gate, then throws the failure asked for it, if any. */
  private async enter(op: FakeOp, volume: string): Promise<void> {
    this.calls.push({ op, volume });
    await this.gates.get(op);
    const queue = this.failures.get(op);
    const next = queue?.[0];
    if (!queue || !next) return;
    next.times -= 1;
    if (next.times <= 0) queue.shift();
    throw next.error;
  }
}

function nameOf(paths: VolumePaths, volume: BackedVolume): string {
  return volume.name ?? paths.dir;
}

import type { ImageSource } from '../core/clone.js';
import type { VolumeEncryption, VolumeSpec } from '../core/options.js';
import type { DiskClaim } from '../state/disk-claim.js';
import type { VolumePaths } from '../state/layout.js';
import type { CheckReport } from '../system/fsck.js';

/** The check a filesystem got before a mount because it had not been left cleanly. */
export interface Preened {
  /** What was unclean about it. */
  reason: string;
  report: CheckReport;
}

/** What the kernel says about one volume right now. */
export interface KernelState {
  mounted: boolean;
  /** The block device behind the volume (loop device or pool disk), when one is attached. */
  device: string | undefined;
  /** The device's detach is pending in the kernel: it goes away at its last close. */
  detaching?: boolean;
  /** Bytes a preallocated image had lost (to a host fstrim) and got back as this Mount attached it. */
  refilledBytes?: number;
  /** This Mount checked the filesystem first (see preenIfUnclean). */
  preened?: Preened;
}

/** The parts of a volume record a backend works from. */
export interface BackedVolume {
  /** Absent while a Create builds it. */
  name?: string;
  spec: VolumeSpec;
  /** The pool disk a `disk` volume owns (see VolumeRecord). */
  disk?: string | undefined;
  /** The UUID of the filesystem on that disk. */
  fsUuid?: string | undefined;
}

/** A disk some disk volume holds, from its record or, when that is unreadable, its claim file. */
export interface HeldDisk {
  volume: string;
  disk: string;
  fsUuid?: string | undefined;
}

/** What provision allocated, merged into the new record. */
export interface Provisioned {
  sizeBytes: number;
  fs: VolumeSpec['fs'];
  disk?: string;
  fsUuid?: string;
  /** The root is already as the spec asks (empty, owner, mode): the first Mount has nothing to prepare. */
  rootPrepared?: boolean;
  /** A restored image is encrypted with this key (see Copied). */
  encryption?: VolumeEncryption;
}

/**
 * A way of backing volumes with block storage. Every method is idempotent and starts from what the
 * kernel says, so a retry after a crash converges rather than stacking devices or mounts.
 */
export interface Backend {
  /** Runs once at start-up, before reconcile. */
  startup(): Promise<void>;
  /**
   * For backends that share hardware among volumes: how to learn, when it needs to, which disks
   * volumes hold. The service calls it once, when it is built.
   */
  knowHeld?(held: () => readonly HeldDisk[]): void;
  /**
   * Names the disk of a record written before disks had stable names, from what the disk holds
   * now: returns what to store, undefined when the record is already up to date, or throws why it
   * cannot be upgraded. Runs at start-up.
   */
  upgrade?(paths: VolumePaths, volume: BackedVolume): Promise<DiskClaim | undefined>;
  /** Resolves when work the backend runs in the background is done. */
  idle(): Promise<void>;
  /**
   * Makes storage for a new volume in its staged directory. With `source` (a clone), the image is
   * filled from it instead of formatted.
   */
  provision(paths: VolumePaths, spec: VolumeSpec, source?: ImageSource): Promise<Provisioned>;
  /**
   * What the kernel says of this volume. `mounts`, the mountpoints of one read of mountinfo, saves
   * the per-volume check when many volumes are inspected at once (start-up).
   */
  inspect(paths: VolumePaths, volume: BackedVolume, mounts?: ReadonlySet<string>): Promise<KernelState>;
  /** Attaches and mounts unless already done; with `prepareRoot`, readies a fresh filesystem's root. */
  activate(paths: VolumePaths, volume: BackedVolume, prepareRoot: boolean): Promise<KernelState>;
  /** Unmounts and detaches; a no-op for a volume that is neither. */
  deactivate(paths: VolumePaths, volume: BackedVolume): Promise<void>;
  /**
   * Grows the volume to `sizeBytes`, online when mounted. Every step is idempotent, so repeating
   * the same resize completes one a crash interrupted.
   */
  grow(paths: VolumePaths, volume: BackedVolume, sizeBytes: number): Promise<void>;
  /** Where the filesystem lies while it is not attached: the image file, or the pool disk. */
  checkTarget(paths: VolumePaths, volume: BackedVolume): Promise<string>;
  /** Frees what lives outside the volume's directory, before the directory is deleted. */
  release(volume: BackedVolume): Promise<void>;
}

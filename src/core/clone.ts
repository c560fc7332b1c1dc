import type { Logger } from 'pino';
import type { FsType } from './fs-type.js';
import type { CloneSource, VolumeEncryption } from './options.js';

/** What an ImageSource copied. */
export interface Copied {
  fs: FsType;
  sizeBytes: number;
  /** A restore: check the filesystem, and keep its UUID unless another local volume has it. */
  restored?: { keepUuid: boolean };
  /** The copy is encrypted with this volume key (a restore of an encrypted volume's image backup). */
  encryption?: VolumeEncryption;
}

/** Fills a new image at `dest` with a clone's source; says what it copied. */
export type ImageSource = (dest: string) => Promise<Copied>;

/**
 * Turns a Create's `from=` into the copy that fills the clone's image. The volume service calls
 * it; the snapshot room (which knows how to copy a volume in use) implements it. When `from`
 * names a volume, `volume` is the service's handle on it: the Create holds that volume's lock
 * (taken in name order with its own), so the copy uses it as it is and must not lock it again.
 */
export interface CloneProvider<Volume> {
  /**
   * `name`: the new volume's (a restore of `from=backup` looks for backups of that name);
   * `restoreOther`: a restore may use a backup of another name (`-o restore-other=true`).
   */
  sourceOf(
    name: string,
    from: CloneSource,
    volume: Volume | undefined,
    log: Logger,
    restoreOther: boolean,
  ): ImageSource;
  /** The size of what a clone copies, so that the space guard can admit it before the copy. */
  sizeOf(name: string, from: CloneSource, volume: Volume | undefined, restoreOther: boolean): Promise<number>;
}

/**
 * A provider that asks `get` for the real one at each call: for a volume service built before
 * the rooms that implement it, which need the service themselves (see daemon.ts).
 */
export function lateClones<Volume>(get: () => CloneProvider<Volume>): CloneProvider<Volume> {
  return {
    sourceOf: (...args) => get().sourceOf(...args),
    sizeOf: (...args) => get().sizeOf(...args),
  };
}

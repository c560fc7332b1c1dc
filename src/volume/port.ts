import type { Backend } from '../backend/backend.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumePaths } from '../state/layout.js';
import type { VolumeRecord } from '../state/record.js';
import type { SpaceTotals } from './ledger.js';
import type { SpaceRequest } from './space-guard.js';

/** One volume as maintenance work sees it (see VolumePort.maintain). */
export interface Maintained {
  record: VolumeRecord;
  paths: VolumePaths;
  backend: Backend;
}

/**
 * What the rooms beside the volume service (snapshot/, backup/, maintenance/, metrics/) may ask
 * of it. They depend on this, not on the service class: the daemon passes the service.
 */
export interface VolumePort {
  /** Resolves once start-up reconciled the records with the kernel. */
  start(): Promise<void>;
  /**
   * Runs work (fsck, gc, snapshots, backups) on one volume under its lock, so that it is
   * serialised with Docker's requests for the volume.
   */
  maintain<T>(name: string, work: (volume: Maintained) => Promise<T>): Promise<T>;
  /** Runs `work` once the space rule admits `request` (see VolumeService.withSpace). */
  withSpace<T>(request: SpaceRequest, refused: string, work: () => Promise<T>): Promise<T>;
  /** Takes a volume's snapshots into the space totals again, after one was made or removed. */
  remeasure(name: string): void;
  /** Whether a volume of this name is served. */
  has(name: string): boolean;
  /** What a volume was created with, if it is served. */
  specOf(name: string): VolumeSpec | undefined;
  /** The names of the volumes served. */
  names(): string[];
  /** Volume directories whose metadata start-up could not read, with why: not served. */
  readonly unreadable: ReadonlyMap<string, string>;
  /** The volumes served and their space; `remeasure` looks at every image again first. */
  figures(remeasure: boolean): Promise<{ volumes: number; dataRoot: string } & SpaceTotals>;
  /** The volumes served, with their mountpoints when mounted. */
  list(): Promise<{ Name: string; Mountpoint: string }[]>;
}

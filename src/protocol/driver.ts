import type { Logger } from 'pino';
import type {
  Backup,
  ClusterVolume,
  FsckReport,
  GcFinding,
  Snapshot,
  VerifyReport,
  Volume,
  VolumeEntry,
} from './wire.js';

/**
 * What the protocol needs from a volume driver. Names arrive validated; `log` is bound to the
 * request and volume. Errors thrown with an operator-facing message are sent as `Err`.
 */
export interface Driver {
  create(name: string, opts: unknown, log: Logger): Promise<void>;
  remove(name: string, log: Logger): Promise<void>;
  mount(name: string, id: string | undefined, log: Logger): Promise<string>;
  unmount(name: string, id: string | undefined, log: Logger): Promise<void>;
  /** loopvol's own extension (Loopvol.Resize), used by `loopvol resize`. */
  resize(name: string, size: string, log: Logger): Promise<void>;
  path(name: string): Promise<string>;
  get(name: string): Promise<Volume>;
  list(): Promise<VolumeEntry[]>;
}

/** loopvol's maintenance extensions, used by the operator commands; dockerd never calls them. */
export interface Maintenance {
  fsck(name: string, repair: boolean, log: Logger): Promise<FsckReport>;
  /** What gc found and did, one entry each (see maintenance/gc.ts). */
  gc(dryRun: boolean, log: Logger): Promise<GcFinding[]>;
  /** Takes a snapshot (named by the time when `snapshot` is absent); `force` lifts the freeze limit. */
  snapshot(name: string, snapshot: string | undefined, force: boolean, log: Logger): Promise<Snapshot>;
  snapshots(name: string): Promise<Snapshot[]>;
  removeSnapshot(name: string, snapshot: string, log: Logger): Promise<void>;
  /** Backs a volume up to the restic repository. */
  backup(name: string, log: Logger): Promise<Backup>;
  /** Restores the newest backup of a volume into a scratch image and checks it (`loopvol backup verify`). */
  verifyBackup(name: string, log: Logger): Promise<VerifyReport>;
  /** The repository's backups, of one volume or all. */
  backups(name: string | undefined): Promise<Backup[]>;
  /** Every volume the cluster knows, with its owner (--cluster). */
  clusterVolumes(): Promise<ClusterVolume[]>;
}

/** Told of every answered request: the method, how long it took and whether it failed. */
export type RequestObserver = (method: string, seconds: number, failed: boolean) => void;

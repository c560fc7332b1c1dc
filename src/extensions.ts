import type { Logger } from 'pino';
import { Backups } from './backup/backups.js';
import { FileBackups } from './backup/file-backup.js';
import type { Cluster } from './cluster/cluster.js';
import type { Config } from './config/resolve.js';
import type { CloneProvider } from './core/clone.js';
import { VolumeError } from './core/errors.js';
import { fsckVolume } from './maintenance/fsck.js';
import { Collector } from './maintenance/gc.js';
import type { Maintenance } from './protocol/driver.js';
import { Snapshots } from './snapshot/snapshots.js';
import type { Store } from './state/store.js';
import type { KernelOps } from './system/kernel-ops.js';
import type { Maintained, VolumePort } from './volume/port.js';

/** A block-by-block image copy's assumed speed, for the --max-freeze estimate (limits.md measures more). */
const COPY_BYTES_PER_SECOND = 400 * 1024 * 1024;

/** The rooms beside the volume service, wired to it and to the protocol's extensions. */
export interface Extensions {
  maintenance: Maintenance;
  collector: Collector;
  snapshots: Snapshots;
  backups: Backups | undefined;
  /** Fills clones (`-o from=`): from volumes and snapshots, and restores from backups. */
  clones: CloneProvider<Maintained>;
  /** The backup fields of Get's Status (none without backups). */
  statusExtras(name: string): Record<string, unknown> | undefined;
  /** The rooms' start-up work, after reconcile and before any request is served. */
  startUp(): Promise<void>;
}

const noBackups = () =>
  new VolumeError(
    'backups need a restic repository: start the daemon with --backup-repo and --backup-password-file',
    'invalid',
  );

export function wireExtensions(
  store: Store,
  service: VolumePort,
  kernel: KernelOps,
  config: Config,
  cluster: Cluster | undefined,
  log: Logger,
): Extensions {
  const collector = new Collector(store, service, kernel);
  const snapshots = new Snapshots(store, service, {
    maxFreezeMs: config.maxFreezeMs,
    copyBytesPerSecond: COPY_BYTES_PER_SECOND,
  });
  const repo = config.backup && {
    repository: config.backup.repository,
    passwordFile: config.backup.passwordFile,
  };
  const files = repo && new FileBackups(kernel, repo, store.layout.root);
  const backups =
    config.backup && repo && files
      ? new Backups(store, service, snapshots, { repo, keep: config.backup.keep, cluster }, files)
      : undefined;
  const restores = () => {
    if (!backups) throw noBackups();
    return backups;
  };
  const clones: CloneProvider<Maintained> = {
    sourceOf: (name, from, volume, log: Logger, restoreOther) =>
      'backup' in from
        ? restores().sourceOf(name, from.backup, restoreOther)
        : snapshots.sourceOf(name, from, volume, log),
    sizeOf: async (name, from, volume, restoreOther) =>
      'backup' in from
        ? restores().sizeOf(name, from.backup, restoreOther)
        : snapshots.sizeOf(name, from, volume),
  };
  const statusExtras = (name: string) => {
    if (!backups) return undefined;
    const { lastSuccess, lastFailure, lastVerify } = backups.status(name);
    return {
      lastBackup: lastSuccess ?? null,
      lastBackupFailure: lastFailure ?? null,
      lastBackupVerify: lastVerify ?? null,
    };
  };
  const startUp = async () => {
    // Before Snapshots.recover thaws what a backup left frozen: its bind goes first.
    if (files) await files.recover(log);
    // Before anything is served, and before a volume an interrupted snapshot left frozen is thawed:
    // mounted copies whose ownership moved while this agent was away are shut down (waits up to the
    // session timeout for ZooKeeper; else freezes them meanwhile, and they stay frozen).
    if (cluster) await cluster.startUp(() => service.names(), log);
    await snapshots.recover(log, (name) => cluster?.writable(name) ?? true);
  };
  const maintenance: Maintenance = {
    fsck: (name, repair, log) => fsckVolume(service, name, repair, log),
    gc: (dryRun, log) => collector.collect(dryRun, log),
    snapshot: (name, snap, force, log) => snapshots.create(name, snap, force, log),
    snapshots: (name) => snapshots.list(name),
    removeSnapshot: (name, snap, log) => snapshots.remove(name, snap, log),
    backup: (name, log) => (backups ? backups.backup(name, log) : Promise.reject(noBackups())),
    backups: (name) => (backups ? backups.list(name) : Promise.reject(noBackups())),
    verifyBackup: (name, log) => (backups ? backups.verify(name, log) : Promise.reject(noBackups())),
    clusterVolumes: () =>
      cluster
        ? cluster.volumes()
        : Promise.reject(
            new VolumeError('this daemon is not in a cluster: start it with --cluster', 'invalid'),
          ),
  };
  return { maintenance, collector, snapshots, backups, clones, statusExtras, startUp };
}

import type { Logger } from 'pino';
import { Backups } from './backup/backups.js';
import { FileBackups } from './backup/file-backup.js';
import type { Cluster } from './cluster/cluster.js';
import type { Config } from './config/resolve.js';
import { VolumeError } from './core/errors.js';
import { fsckVolume } from './maintenance/fsck.js';
import { Collector } from './maintenance/gc.js';
import type { Maintenance } from './protocol/driver.js';
import { Snapshots } from './snapshot/snapshots.js';
import type { Store } from './state/store.js';
import type { KernelOps } from './system/kernel-ops.js';
import type { VolumeService } from './volume/service.js';

/** A block-by-block image copy's assumed speed, for the --max-freeze estimate (limits.md measures more). */
const COPY_BYTES_PER_SECOND = 400 * 1024 * 1024;

/** The rooms beside the volume service, wired to it and to the protocol's extensions. */
export interface Extensions {
  maintenance: Maintenance;
  collector: Collector;
  snapshots: Snapshots;
  backups: Backups | undefined;
  cluster: Cluster | undefined;
}

const noBackups = () =>
  new VolumeError(
    'backups need a restic repository: start the daemon with --backup-repo and --backup-password-file',
    'invalid',
  );

export async function wireExtensions(
  store: Store,
  service: VolumeService,
  kernel: KernelOps,
  config: Config,
  log: Logger,
): Promise<Extensions> {
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
  // Before Snapshots.recover thaws what a backup left frozen: its bind goes first.
  if (files) service.onStart(() => files.recover(log));
  const backups =
    config.backup && repo && files
      ? new Backups(store, service, snapshots, { repo, keep: config.backup.keep }, files)
      : undefined;
  const restores = () => {
    if (!backups) throw noBackups();
    return backups;
  };
  service.clones = {
    sourceOf: (name, from, volume, log: Logger, restoreOther) =>
      'backup' in from
        ? restores().sourceOf(name, from.backup, restoreOther)
        : snapshots.sourceOf(name, from, volume, log),
    sizeOf: async (name, from, volume, restoreOther) =>
      'backup' in from
        ? restores().sizeOf(name, from.backup, restoreOther)
        : snapshots.sizeOf(name, from, volume),
  };
  if (backups) {
    service.statusExtras = (name) => {
      const { lastSuccess, lastFailure, lastVerify } = backups.status(name);
      return {
        lastBackup: lastSuccess ?? null,
        lastBackupFailure: lastFailure ?? null,
        lastBackupVerify: lastVerify ?? null,
      };
    };
  }
  // The ZooKeeper client is loaded only in a cluster: start-up (restart time) stays short without it.
  const cluster = config.cluster
    ? await (await import('./cluster/cluster.js')).Cluster.create(config.cluster, store.layout, log)
    : undefined;
  service.cluster = cluster;
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
  return { maintenance, collector, snapshots, backups, cluster };
}

import type { Logger } from 'pino';
import type { Driver, Maintenance } from '../../src/protocol/driver.js';
import type { Backup, Snapshot, VerifyReport, VolumeStatus } from '../../src/protocol/wire.js';

/** Replies shaped as the real service and rooms make them, for the protocol's unit tests. */
export const STATUS: VolumeStatus = {
  backend: 'loop',
  size: 1,
  fs: 'ext4',
  sparse: true,
  allocated: 4096,
  hostFree: 1e9,
  hostProvisioned: 1,
  hostAllocated: 4096,
  mounted: false,
  holders: 0,
  loopDevice: null,
  used: null,
  free: null,
  uid: 0,
  gid: 0,
  mode: '0755',
  mountOptions: '',
  snapshots: [],
};

export const SNAPSHOT: Snapshot = {
  name: 'auto',
  createdAt: '2026-01-02T03:04:05.000Z',
  sizeBytes: 1,
  allocatedBytes: 4096,
  fs: 'ext4',
  method: 'reflink',
  frozen: false,
};

export const BACKUP: Backup = {
  id: 'abc',
  time: '2026-01-02T03:04:05.000Z',
  host: 'h1',
  volume: 'ab',
  fs: 'ext4',
  sizeBytes: 1,
  generation: 0,
};

export const VERIFY: VerifyReport = {
  volume: 'ab',
  backup: 'abc',
  backupTime: '2026-01-02T03:04:05.000Z',
  generation: 0,
  ok: true,
  problems: [],
  sizeBytes: 1,
  restoredBytes: 4096,
  seconds: 0.5,
  time: '2026-01-02T03:05:05.000Z',
};

/** A driver that records its calls; a test swaps in `fail` to make every method throw it. */
export function fakeDriver() {
  const calls: { method: string; args: unknown[] }[] = [];
  const state = { fail: undefined as unknown };
  const record = (method: string, ...args: unknown[]) => {
    calls.push({ method, args });
    if (state.fail !== undefined) throw state.fail;
  };
  const driver: Driver = {
    async create(name, opts, _log: Logger) {
      record('create', name, opts);
    },
    async remove(name) {
      record('remove', name);
    },
    async mount(name, id) {
      record('mount', name, id);
      return `/data/${name}/mnt`;
    },
    async unmount(name, id) {
      record('unmount', name, id);
    },
    async resize(name, size) {
      record('resize', name, size);
    },
    async path(name) {
      record('path', name);
      return `/data/${name}/mnt`;
    },
    async get(name) {
      record('get', name);
      return { Name: name, Mountpoint: '', CreatedAt: '2026-01-02T03:04:05.000Z', Status: STATUS };
    },
    async list() {
      record('list');
      return [{ Name: 'ab', Mountpoint: '' }];
    },
  };
  return { driver, calls, state };
}

/** Maintenance that records what it was asked in `asked` and answers with the replies above. */
export function fakeMaintenance(asked: unknown[][]): Maintenance {
  return {
    async fsck(name, repair) {
      asked.push(['fsck', name, repair]);
      return { clean: true, repaired: false, command: 'e2fsck', exitCode: 0, output: [] };
    },
    async gc(dryRun) {
      asked.push(['gc', dryRun]);
      return [];
    },
    async snapshot(name, snapshot, force) {
      asked.push(['snapshot', name, snapshot, force]);
      return { ...SNAPSHOT, name: snapshot ?? 'auto' };
    },
    async snapshots(name) {
      asked.push(['snapshots', name]);
      return [];
    },
    async removeSnapshot(name, snapshot) {
      asked.push(['removeSnapshot', name, snapshot]);
    },
    async backup(name) {
      asked.push(['backup', name]);
      return BACKUP;
    },
    async backups(name) {
      asked.push(['backups', name]);
      return [];
    },
    async verifyBackup(name) {
      asked.push(['verifyBackup', name]);
      return VERIFY;
    },
    async clusterVolumes() {
      return [];
    },
  };
}

import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import type { CloneProvider } from '../core/clone.js';
import type { ClusterGuard } from '../core/cluster-guard.js';
import { VolumeError, wrap } from '../core/errors.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { LATEST_BACKUP, type VolumeSpec } from '../core/options.js';
import { formatSize } from '../core/size.js';
import type { VolumeKeys } from '../encryption/keys.js';
import type { VolumePaths } from '../state/layout.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import { encryptionFor, prepareNewEncrypted } from './encrypted.js';
import type { Maintained } from './port.js';
import type { Registry } from './registry.js';
import type { Space } from './space.js';

export interface ProvisionDeps {
  store: Store;
  backends: Record<VolumeSpec['backend'], Backend>;
  registry: Registry;
  space: Space;
  clones: CloneProvider<Maintained> | undefined;
  cluster: ClusterGuard | undefined;
  keys: VolumeKeys;
  /** A served volume as clones see it; the Create holds its lock. */
  maintained(name: string): Maintained;
}

/**
 * A Create's work once the name is free and locked: the cluster claim, then stage → provision →
 * record → commit, a clone sized at least as its source and admitted by the space rule first.
 */
export class Provisioner {
  /** Disk volumes pick from one pool: two Creates must not claim the same disk. */
  private readonly poolLock = new KeyedLock();

  constructor(private readonly deps: ProvisionDeps) {}

  async create(name: string, spec: VolumeSpec, log: Logger): Promise<void> {
    const { cluster } = this.deps;
    // In a cluster the name is claimed first: refused if another live agent has it; restored
    // from its latest backup if its owner is gone (--restore-missing).
    const claimed = cluster
      ? await cluster.claimForCreate(name, spec.fresh === true, log).catch((err: unknown) => {
          throw wrap(err, `cannot create volume ${name}`);
        })
      : undefined;
    try {
      if (!spec.from && claimed && claimed.plan !== 'empty') {
        if (claimed.plan === 'restore' || (await this.hasBackup(name))) spec.from = { backup: LATEST_BACKUP };
      }
      await this.createClaimed(name, spec, log);
    } catch (err) {
      await claimed?.claim
        .undo()
        .catch((undoErr: Error) =>
          log.error({ err: undoErr.message }, 'could not undo the claim in ZooKeeper'),
        );
      throw err;
    }
  }

  private requireClones(): CloneProvider<Maintained> {
    if (!this.deps.clones)
      throw new VolumeError('clones (from=) are not available in this daemon', 'invalid');
    return this.deps.clones;
  }

  /** Whether a backup of `name` can be restored (none without a backup repository). */
  private async hasBackup(name: string): Promise<boolean> {
    try {
      await this.requireClones().sizeOf(name, { backup: LATEST_BACKUP }, undefined, false);
      return true;
    } catch (err) {
      // Not found, or no repository: nothing to restore. Anything else (restic failing) fails
      // the Create rather than make it empty.
      if (err instanceof VolumeError && (err.kind === 'not-found' || err.kind === 'invalid')) return false;
      throw err;
    }
  }

  private async createClaimed(name: string, spec: VolumeSpec, log: Logger): Promise<void> {
    const { store, backends, registry, space } = this.deps;
    let source: Maintained | undefined;
    if (spec.from) {
      // A clone is at least as large as its source: that is what the space guard must admit.
      try {
        source = 'volume' in spec.from ? this.deps.maintained(spec.from.volume) : undefined;
        const sourceBytes = await this.requireClones().sizeOf(name, spec.from, source, spec.restoreOther);
        spec.sizeBytes = Math.max(spec.sizeBytes, sourceBytes);
      } catch (err) {
        throw wrap(err, `cannot create volume ${name}`);
      }
    }
    const planned = encryptionFor(name, spec, source, this.deps.keys);
    const build = async () => {
      let staged: VolumePaths | undefined;
      try {
        staged = await store.stage();
        const copy = spec.from
          ? this.requireClones().sourceOf(name, spec.from, source, log, spec.restoreOther)
          : undefined;
        const provisioned = await backends[spec.backend].provision(staged, spec, copy);
        const { sizeBytes, fs, disk, fsUuid, rootPrepared } = provisioned;
        // A restore learns its encryption from the backup.
        const encryption = planned ?? provisioned.encryption;
        if (encryption) spec.encrypt = true;
        if (planned && !copy) {
          await prepareNewEncrypted(name, backends[spec.backend], staged, spec, planned, this.deps.keys);
        }
        const record: VolumeRecord = {
          version: 1,
          name,
          createdAt: new Date().toISOString(),
          spec: { ...spec, sizeBytes, fs },
          ...(disk ? { disk, fsUuid } : {}),
          ...(encryption ? { encryption } : {}),
          initialized: rootPrepared === true || encryption !== undefined,
          holders: {},
        };
        await store.commit(staged, record);
        registry.set(record);
        space.measure(record);
        log.info({ spec: record.spec, disk }, 'volume created');
      } catch (err) {
        if (staged) {
          await store
            .discardStaged(staged)
            .catch((cleanup) => log.error({ err: cleanup }, 'staging cleanup failed'));
        }
        throw wrap(err, `cannot create volume ${name}`);
      }
    };
    if (spec.backend === 'disk') return this.poolLock.run('pool', build);
    // A clone or restore is admitted as a volume of its size: its copy fills what that promises.
    const request = {
      bytes: spec.sizeBytes,
      written: !spec.sparse,
      what: `a preallocated ${formatSize(spec.sizeBytes)}`,
      advice: 'or ask for a sparse volume',
    };
    await space.withSpace(request, `cannot create volume ${name}`, build);
  }
}

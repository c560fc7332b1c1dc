import type { Logger } from 'pino';
import type { Backend, KernelState } from '../backend/backend.js';
import type { CloneProvider } from '../core/clone.js';
import type { ClusterGuard } from '../core/cluster-guard.js';
import { VolumeError, wrap } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import { addHolder, describeHolders, holderCount, removeHolder } from '../core/holders.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { parseVolumeSpec, type SpecDefaults, type VolumeSpec } from '../core/options.js';
import { parseSize } from '../core/size.js';
import { VolumeKeys } from '../encryption/keys.js';
import { servedPath } from '../encryption/unlock.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import { filesystemUsage } from '../system/fsstat.js';
import { readMounts } from '../system/mountinfo.js';
import {
  activateForMount,
  deactivateVolume,
  reportPreened,
  reportRefilled,
  undoActivation,
} from './activate.js';
import { Afterwards } from './afterwards.js';
import type { SpaceTotals } from './ledger.js';
import type { Maintained, VolumePort } from './port.js';
import { Provisioner } from './provision.js';
import { Reconciler } from './reconcile.js';
import { Registry } from './registry.js';
import { growVolume } from './resize.js';
import { Space } from './space.js';
import type { SpaceRequest } from './space-guard.js';
import { volumeStatus } from './status.js';

/** A volume as Get reports it (protocol/wire.ts describes it on the wire). */
export type VolumeInfo = Awaited<ReturnType<VolumeService['get']>>;

/** Everything the service works with, given once at construction (the daemon wires it). */
export interface VolumeServiceDeps {
  store: Store;
  backends: Record<VolumeSpec['backend'], Backend>;
  defaults: SpecDefaults;
  log: Logger;
  /** How far the sizes of loop volumes may exceed the data root's filesystem (see spaceRefusal); default 1. */
  overcommit?: number;
  /** With --cluster: who owns which name (cluster/). */
  cluster?: ClusterGuard;
  /** Fills clones (`-o from=`): the snapshot and backup rooms. Without it, from= is refused. */
  clones?: CloneProvider<Maintained>;
  /** More Status fields from the rooms beside the service (backups). */
  statusExtras?: (name: string) => Record<string, unknown> | undefined;
  /**
   * Work of the rooms beside the service that must finish before any request is served, run at
   * the end of start-up, after reconcile (the snapshot room thaws what a crash left frozen).
   */
  startUp?: () => Promise<void>;
  /** The operator's master key (--key-file) for encrypted volumes; without it they are refused. */
  keys?: VolumeKeys;
}

/**
 * The volume lifecycle: validates requests against the records, serialises work per volume,
 * counts holders, and drives the backend. Knows nothing of HTTP. Its jobs live beside it:
 * registry (records), space (admission, measures), reconcile (start-up), provision (Create's
 * work), status (Get's Status).
 */
export class VolumeService implements VolumePort {
  private readonly store: Store;
  private readonly registry: Registry;
  private readonly space: Space;
  private readonly provisioner: Provisioner;
  private readonly afterwards = new Afterwards();
  private readonly locks = new KeyedLock();
  private readonly keys: VolumeKeys;
  private started: Promise<void> | undefined;
  private prepared: Promise<void> | undefined;

  constructor(private readonly deps: VolumeServiceDeps) {
    const { store, backends, log } = deps;
    this.store = store;
    this.keys = deps.keys ?? new VolumeKeys(undefined);
    this.registry = new Registry(store);
    this.space = new Space(store, this.registry, log, deps.overcommit ?? 1);
    this.provisioner = new Provisioner({
      store,
      backends,
      registry: this.registry,
      space: this.space,
      clones: deps.clones,
      cluster: deps.cluster,
      keys: this.keys,
      maintained: (name) => this.maintained(name),
    });
    for (const backend of Object.values(backends)) backend.knowHeld?.(() => this.registry.heldDisks());
  }

  /** Volume directories whose metadata start-up could not read, with why: not served. */
  get unreadable(): ReadonlyMap<string, string> {
    return this.registry.unreadable;
  }

  /**
   * Makes sure the data root is usable (created, plain directories, private), tightening loose
   * modes with a log line. Fast, so the daemon does it before listening: a data root it must refuse
   * (a symlink) stops it before dockerd ever sees a socket.
   */
  prepare(): Promise<void> {
    this.prepared ??= this.store.init().then((repairs) => {
      for (const repaired of repairs) {
        this.deps.log.warn({ repaired }, 'data root was open to other users: tightened to 0700');
      }
    });
    return this.prepared;
  }

  /** Reconciles the records with the kernel, then runs the rooms' start-up; every request waits for it. */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.prepare();
      const { store, backends, log } = this.deps;
      await new Reconciler(store, backends, this.registry, this.space, log).run();
      await this.deps.startUp?.();
    })();
    return this.started;
  }

  /** See Space.withSpace: every Create, resize, snapshot and copy of a loop volume comes through it. */
  withSpace<T>(request: SpaceRequest, refused: string, work: () => Promise<T>): Promise<T> {
    return this.space.withSpace(request, refused, work);
  }

  /** Resolves once the work left running after answering (deleting removed volumes' files) is done. */
  async idle(): Promise<void> {
    await this.afterwards.settled();
    await Promise.all(Object.values(this.deps.backends).map((b) => b.idle()));
  }

  async create(name: string, opts: unknown, log: Logger): Promise<void> {
    const spec = parseVolumeSpec(opts, this.deps.defaults);
    if ('error' in spec) throw new VolumeError(`cannot create volume ${name}: ${spec.error}`, 'invalid');
    const source = spec.from && 'volume' in spec.from ? spec.from.volume : undefined;
    if (source === name) {
      throw new VolumeError(
        `cannot create volume ${name} from itself: from= names another volume or a snapshot of another volume`,
        'invalid',
      );
    }
    await this.start();
    // A clone's copy runs under its source's lock: the Create takes it with its own, in name
    // order, so that crossed clones (a from b, b from a) cannot each wait for the other.
    await this.locks.runAll(source ? [name, source] : [name], async () => {
      if (this.registry.has(name)) {
        log.info('volume exists; create is a no-op and its options are ignored');
        return;
      }
      // A removed volume's files may still be on their way out: their space is about to be free.
      await this.afterwards.settled();
      await this.provisioner.create(name, spec, log);
    });
  }

  async remove(name: string, log: Logger): Promise<void> {
    await this.whenReady(name, async () => {
      const record = this.registry.require(name);
      if (holderCount(record.holders) > 0) {
        throw new VolumeError(
          `volume ${name} is in use by ${describeHolders(record.holders)}: stop the containers or tasks using it, then remove it`,
          'conflict',
        );
      }
      const snapshots = this.store.snapshots.list(name).map((s) => s.name);
      if (snapshots.length > 0) {
        throw new VolumeError(
          `volume ${name} has snapshots (${snapshots.join(', ')}): remove them first with "loopvol snapshot rm ${name} SNAP", or keep the volume`,
          'conflict',
        );
      }
      let purge: () => Promise<void>;
      try {
        const backend = this.backendOf(record);
        await deactivateVolume(backend, this.store.layout.volume(name), record);
        await backend.release(record);
        crashPoint('remove:released');
        purge = await this.store.discard(name);
      } catch (err) {
        throw wrap(err, `cannot remove volume ${name}`);
      }
      this.afterwards.run(purge, log, "could not delete a removed volume's files; start-up deletes them");
      this.registry.delete(name);
      this.space.forget(name);
      this.store.layout.forget(name);
      await this.deps.cluster?.released(name, log);
      log.info('volume removed');
    });
  }

  async mount(name: string, id: string | undefined, log: Logger): Promise<string> {
    return this.whenReady(name, async () => {
      const record = this.registry.require(name);
      const paths = this.store.layout.volume(name);
      const backend = this.backendOf(record);
      // Every Mount asks the cluster: a copy whose ownership moved is stale, even one still mounted.
      if (this.deps.cluster) await this.deps.cluster.checkMount(name, log);
      const state = await activateForMount(backend, paths, record, log, this.keys);
      try {
        this.deps.cluster?.confirmMounted(name);
      } catch (err) {
        // Fenced while activating: the fence did not see this mount, so it must not stay.
        await undoActivation(backend, record, paths);
        throw err;
      }
      reportPreened(state, log);
      try {
        const next = { ...record, initialized: true, holders: addHolder(record.holders, id) };
        // Only the first Mount changes volume.json (initialized); later ones touch the holders alone.
        await (record.initialized ? this.registry.saveHolders(next) : this.registry.update(next));
      } catch (err) {
        // Unrecorded, this mount would have no holder to ever release it.
        await undoActivation(backend, record, paths);
        throw wrap(err, `cannot mount volume ${name}: recording the mount failed`);
      }
      crashPoint('mount:recorded');
      reportRefilled(state, log);
      log.info(
        { device: state.device, holders: holderCount(this.registry.require(name).holders) },
        'volume mounted',
      );
      return servedPath(paths.mountPoint, record.encryption);
    });
  }

  async unmount(name: string, id: string | undefined, log: Logger): Promise<void> {
    await this.whenReady(name, async () => {
      const record = this.registry.require(name);
      const { holders, known } = removeHolder(record.holders, id);
      if (known) await this.registry.releaseHolder({ ...record, holders }, log);
      else
        log.warn({ id: id ?? null }, 'unmount from an ID that does not hold the volume; nothing to release');
      crashPoint('unmount:recorded');
      if (holderCount(holders) > 0) return;
      const paths = this.store.layout.volume(name);
      try {
        await deactivateVolume(this.backendOf(record), paths, record, log);
      } catch (err) {
        throw wrap(
          err,
          `volume ${name} has no holders left but could not be unmounted`,
          `find what still uses it with "fuser -vm ${paths.mountPoint}"; loopvol retries on the next Unmount or Remove`,
        );
      }
      log.info('volume unmounted');
    });
  }

  /** Grows a volume (never shrinks: that could lose data). Repeating a resize completes an interrupted one. */
  async resize(name: string, size: string, log: Logger): Promise<void> {
    const parsed = parseSize(size);
    if ('error' in parsed) throw new VolumeError(`cannot resize volume ${name}: ${parsed.error}`, 'invalid');
    await this.whenReady(name, async () => {
      const record = this.registry.require(name);
      const { store, registry, space } = this;
      await growVolume({ store, registry, space }, this.backendOf(record), record, parsed.bytes, log);
    });
  }

  async path(name: string): Promise<string> {
    return this.whenReady(name, async () => {
      const record = this.registry.require(name);
      const mounted = (await this.inspect(record)).mounted;
      return mounted ? this.served(record) : '';
    });
  }

  /** A handful of stat calls for this one volume, whatever the number of volumes on the host. */
  async get(name: string) {
    return this.whenReady(name, async () => {
      const record = this.registry.require(name);
      const paths = this.store.layout.volume(name);
      const state = await this.inspect(record);
      const { allocated } = this.space.measure(record);
      const host = record.spec.backend === 'loop' ? filesystemUsage(paths.dir) : undefined;
      const usage = state.mounted ? filesystemUsage(paths.mountPoint) : undefined;
      return {
        Name: name,
        Mountpoint: state.mounted ? this.served(record) : '',
        CreatedAt: record.createdAt,
        Status: volumeStatus({
          record,
          state,
          allocated,
          host,
          usage,
          totals: this.space.totals(),
          snapshots: this.store.snapshots.list(name).map((s) => s.name),
          extras: this.deps.statusExtras?.(name),
          cluster: this.deps.cluster?.statusOf(name),
        }),
      };
    });
  }

  /** One read of mountinfo, however many volumes there are. */
  async list(): Promise<{ Name: string; Mountpoint: string }[]> {
    await this.start();
    const mounted = new Set((await readMounts()).map((m) => m.mountPoint));
    return this.registry.sortedNames().map((name) => {
      const record = this.registry.require(name);
      const mountPoint = this.store.layout.volume(name).mountPoint;
      return { Name: name, Mountpoint: mounted.has(mountPoint) ? this.served(record) : '' };
    });
  }

  /**
   * The volumes served and their space, for metrics. With `remeasure`, every image is looked at
   * again first (a stat each, yielding between batches): sparse images grow without a request.
   */
  async figures(remeasure: boolean): Promise<{ volumes: number; dataRoot: string } & SpaceTotals> {
    if (remeasure) await this.space.remeasureAll();
    return { volumes: this.registry.size, dataRoot: this.store.layout.root, ...this.space.totals() };
  }

  /** Takes a volume's snapshots into the space totals again, after one was made or removed. */
  remeasure(name: string): void {
    const record = this.registry.get(name);
    if (record) this.space.measure(record);
  }

  /** The names of the volumes served. */
  names(): string[] {
    return this.registry.names();
  }

  /** What a volume was created with, if it is served. */
  specOf(name: string): VolumeSpec | undefined {
    return this.registry.specOf(name);
  }

  /** Whether a volume of this name is served. */
  has(name: string): boolean {
    return this.registry.has(name);
  }

  /**
   * Runs maintenance work (maintenance/: fsck, gc) on one volume under its lock, so that it is
   * serialised with Docker's requests for the volume.
   */
  async maintain<T>(name: string, work: (volume: Maintained) => Promise<T>): Promise<T> {
    return this.whenReady(name, () => work(this.maintained(name)));
  }

  /** A served volume as maintenance work and clones see it; the caller holds its lock. */
  private maintained(name: string): Maintained {
    const record = this.registry.require(name);
    return { record, paths: this.store.layout.volume(name), backend: this.backendOf(record) };
  }

  private async whenReady<T>(name: string, work: () => Promise<T>): Promise<T> {
    await this.start();
    return this.locks.run(name, work);
  }

  /** Where a volume's data is served: its mountpoint, or the encrypted directory in it. */
  private served(record: VolumeRecord): string {
    return servedPath(this.store.layout.volume(record.name).mountPoint, record.encryption);
  }

  private backendOf(record: VolumeRecord): Backend {
    return this.deps.backends[record.spec.backend];
  }

  private inspect(record: VolumeRecord): Promise<KernelState> {
    return this.backendOf(record).inspect(this.store.layout.volume(record.name), record);
  }
}

import pMap from 'p-map';
import type { Logger } from 'pino';
import type { Backend, HeldDisk, KernelState } from '../backend/backend.js';
import type { CloneProvider } from '../core/clone.js';
import type { ClusterGuard } from '../core/cluster-guard.js';
import { describeError, FilesystemDamaged, notFound, VolumeError, wrap } from '../core/errors.js';
import { addHolder, describeHolders, holderCount, removeHolder } from '../core/holders.js';
import { KeyedLock } from '../core/keyed-lock.js';
import { LATEST_BACKUP, parseVolumeSpec, type SpecDefaults, type VolumeSpec } from '../core/options.js';
import { formatSize, parseSize } from '../core/size.js';
import { crashPoint } from '../faults.js';
import type { VolumePaths } from '../state/layout.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import { type FileSpace, fileSpace, filesystemUsage } from '../system/fsstat.js';
import { readMounts } from '../system/mountinfo.js';
import { SpaceLedger, type SpaceTotals } from './ledger.js';
import { FULL_WARNING_RATIO, FullnessWatch, type SpaceRequest, spaceRefusal } from './space-guard.js';

/** One volume as maintenance work sees it (see VolumeService.maintain). */
export interface Maintained {
  record: VolumeRecord;
  paths: VolumePaths;
  backend: Backend;
}

/** A volume as Get reports it (protocol/wire.ts describes it on the wire). */
export type VolumeInfo = Awaited<ReturnType<VolumeService['get']>>;

/**
 * The volume lifecycle: validates requests against the records, serialises work per volume,
 * counts holders, and drives the backend. Knows nothing of HTTP.
 */
export class VolumeService {
  private readonly records = new Map<string, VolumeRecord>();
  /** List's order, kept until a Create or Remove changes the set of names. */
  private sortedNames: string[] | undefined;
  private readonly ledger = new SpaceLedger();
  private readonly pending = new Set<Promise<void>>();
  private readonly locks = new KeyedLock();
  /** Disk volumes pick from one pool: two Creates must not claim the same disk. */
  private readonly poolLock = new KeyedLock();
  private started: Promise<void> | undefined;
  private prepared: Promise<void> | undefined;

  private readonly fullness = new FullnessWatch();
  /** Volume directories whose metadata start-up could not read, with why: not served. */
  readonly unreadable = new Map<string, string>();
  /** Disks held by volumes whose record start-up could not read, from their claim files. */
  private readonly heldUnreadable: HeldDisk[] = [];

  constructor(
    private readonly store: Store,
    private readonly backends: Record<VolumeSpec['backend'], Backend>,
    private readonly defaults: SpecDefaults,
    private readonly log: Logger,
    /** How far the sizes of loop volumes may exceed the data root's filesystem (see spaceRefusal). */
    private readonly overcommit = 1,
  ) {
    for (const backend of Object.values(backends)) backend.knowHeld?.(() => this.heldDisks());
  }

  /** Every disk a disk volume holds, readable or not: no Create may take one of them. */
  private heldDisks(): HeldDisk[] {
    const held = [...this.heldUnreadable];
    for (const { name, disk, fsUuid } of this.records.values())
      if (disk) held.push({ volume: name, disk, fsUuid });
    return held;
  }

  /** Fills clones (`-o from=`); set by the daemon once the snapshot room exists. */
  clones: CloneProvider<Maintained> | undefined;
  /** Work of the rooms beside the service that must finish before any request is served. */
  private readonly startHooks: (() => Promise<void>)[] = [];

  /**
   * Runs `hook` at the end of start-up, after reconcile and before requests are served (the
   * snapshot room thaws what a crash left frozen). Register before start().
   */
  onStart(hook: () => Promise<void>): void {
    this.startHooks.push(hook);
  }

  /** With --cluster: who owns which name (cluster/); set by the daemon. */
  cluster: ClusterGuard | undefined;

  /** More Status fields from the rooms beside the service (backups); set by the daemon. */
  statusExtras: ((name: string) => Record<string, unknown>) | undefined;

  /**
   * Makes sure the data root is usable (created, plain directories, private), tightening loose
   * modes with a log line. Fast, so the daemon does it before listening: a data root it must refuse
   * (a symlink) stops it before dockerd ever sees a socket.
   */
  prepare(): Promise<void> {
    this.prepared ??= this.store.init().then((repairs) => {
      for (const repaired of repairs) {
        this.log.warn({ repaired }, 'data root was open to other users: tightened to 0700');
      }
    });
    return this.prepared;
  }

  /**
   * Runs `work` once `request` is admitted by the space rule (spaceRefusal, over the ledger),
   * holding its bytes in the ledger until `work` is done (by then what it made is measured), so
   * that concurrent requests cannot both squeeze in. A refusal (no-space) says `refused`, then why
   * with the figures.
   * Every Create, resize, snapshot and copy of a loop volume comes through here.
   */
  async withSpace<T>(request: SpaceRequest, refused: string, work: () => Promise<T>): Promise<T> {
    let host = filesystemUsage(this.store.layout.root);
    const refusal = () => spaceRefusal(request, this.ledger.booked(), host, this.overcommit);
    if (refusal()) {
      // The figures are as fresh as the last request for each volume: look again before refusing.
      await this.remeasureAll();
      host = filesystemUsage(this.store.layout.root);
    }
    const reason = refusal();
    if (reason) throw new VolumeError(`${refused}: ${reason}`, 'no-space');
    this.ledger.reserve(request.bytes);
    if (this.fullness.crossed(host)) {
      this.log.warn(
        { ...this.ledger.totals(), hostUsedBytes: host.usedBytes, hostTotalBytes: host.totalBytes },
        `the data root's filesystem is over ${FULL_WARNING_RATIO * 100}% used: free space there before sparse volumes fill it`,
      );
    }
    try {
      return await work();
    } finally {
      this.ledger.release(request.bytes);
    }
  }

  private requireClones(): CloneProvider<Maintained> {
    if (!this.clones) throw new VolumeError('clones (from=) are not available in this daemon', 'invalid');
    return this.clones;
  }

  /** Resolves once the work left running after answering (deleting removed volumes' files) is done. */
  async idle(): Promise<void> {
    await this.settled();
    await Promise.all(Object.values(this.backends).map((b) => b.idle()));
  }

  private async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  /** Runs work that need not delay the answer; failures are logged, and Create waits for it (space). */
  private afterwards(work: () => Promise<void>, log: Logger, failure: string): void {
    const done: Promise<void> = work()
      .catch((err) => log.error({ err: describeError(err) }, failure))
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Reconciles the records with the kernel; every request waits for it. Call once. */
  start(): Promise<void> {
    this.started ??= this.reconcile();
    return this.started;
  }

  async create(name: string, opts: unknown, log: Logger): Promise<void> {
    const spec = parseVolumeSpec(opts, this.defaults);
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
      if (this.records.has(name)) {
        log.info('volume exists; create is a no-op and its options are ignored');
        return;
      }
      // A removed volume's files may still be on their way out: their space is about to be free.
      await this.settled();
      // In a cluster the name is claimed first: refused if another live agent has it; restored
      // from its latest backup if its owner is gone (--restore-missing).
      const claimed = this.cluster
        ? await this.cluster.claimForCreate(name, spec.fresh === true, log).catch((err: unknown) => {
            throw wrap(err, `cannot create volume ${name}`);
          })
        : undefined;
      try {
        if (!spec.from && claimed && claimed.plan !== 'empty') {
          if (claimed.plan === 'restore' || (await this.hasBackup(name)))
            spec.from = { backup: LATEST_BACKUP };
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
    });
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
    let source: Maintained | undefined;
    if (spec.from) {
      // A clone is at least as large as its source: that is what the space guard must admit.
      try {
        source = 'volume' in spec.from ? this.maintained(spec.from.volume) : undefined;
        const sourceBytes = await this.requireClones().sizeOf(name, spec.from, source, spec.restoreOther);
        spec.sizeBytes = Math.max(spec.sizeBytes, sourceBytes);
      } catch (err) {
        throw wrap(err, `cannot create volume ${name}`);
      }
    }
    const build = async () => {
      let staged: VolumePaths | undefined;
      try {
        staged = await this.store.stage();
        const copy = spec.from
          ? this.requireClones().sourceOf(name, spec.from, source, log, spec.restoreOther)
          : undefined;
        const { sizeBytes, fs, disk, fsUuid, rootPrepared } = await this.backends[spec.backend].provision(
          staged,
          spec,
          copy,
        );
        const record: VolumeRecord = {
          version: 1,
          name,
          createdAt: new Date().toISOString(),
          spec: { ...spec, sizeBytes, fs },
          ...(disk ? { disk, fsUuid } : {}),
          initialized: rootPrepared === true,
          holders: {},
        };
        await this.store.commit(staged, record);
        this.records.set(name, record);
        this.sortedNames = undefined;
        this.measure(record);
        log.info({ spec: record.spec, disk }, 'volume created');
      } catch (err) {
        if (staged) {
          await this.store
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
    await this.withSpace(request, `cannot create volume ${name}`, build);
  }

  async remove(name: string, log: Logger): Promise<void> {
    await this.whenReady(name, async () => {
      const record = this.require(name);
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
        await backend.deactivate(this.store.layout.volume(name), record);
        await backend.release(record);
        crashPoint('remove:released');
        purge = await this.store.discard(name);
      } catch (err) {
        throw wrap(err, `cannot remove volume ${name}`);
      }
      this.afterwards(purge, log, "could not delete a removed volume's files; start-up deletes them");
      this.records.delete(name);
      this.sortedNames = undefined;
      this.ledger.delete(name);
      this.store.layout.forget(name);
      await this.cluster?.released(name, log);
      log.info('volume removed');
    });
  }

  async mount(name: string, id: string | undefined, log: Logger): Promise<string> {
    return this.whenReady(name, async () => {
      const record = this.require(name);
      const paths = this.store.layout.volume(name);
      // Every Mount asks the cluster: a copy whose ownership moved is stale, even one still mounted.
      if (this.cluster) await this.cluster.checkMount(name, log);
      let state: KernelState;
      try {
        state = await this.backendOf(record).activate(paths, record, !record.initialized);
      } catch (err) {
        if (err instanceof FilesystemDamaged) {
          log.error({ problem: err.detail, output: err.output }, 'filesystem damaged: refusing to mount it');
          throw new VolumeError(
            `cannot mount volume ${name}: its filesystem is damaged (${err.detail}): run "loopvol fsck ${name} --repair" while no container uses it, then mount again`,
          );
        }
        throw wrap(err, `cannot mount volume ${name}`);
      }
      try {
        this.cluster?.confirmMounted(name);
      } catch (err) {
        // Fenced while activating: the fence did not see this mount, so it must not stay.
        await this.undoActivation(record, paths);
        throw err;
      }
      if (state.preened) {
        const { reason, report } = state.preened;
        log.warn(
          { reason, command: report.command, exitCode: report.exitCode, output: report.output },
          report.repaired
            ? 'filesystem was not left cleanly: the check before mounting repaired it'
            : 'filesystem was not left cleanly: the check before mounting found it consistent',
        );
      }
      try {
        const next = { ...record, initialized: true, holders: addHolder(record.holders, id) };
        // Only the first Mount changes volume.json (initialized); later ones touch the holders alone.
        await (record.initialized ? this.saveHolders(next) : this.update(next));
      } catch (err) {
        // Unrecorded, this mount would have no holder to ever release it.
        await this.undoActivation(record, paths);
        throw wrap(err, `cannot mount volume ${name}: recording the mount failed`);
      }
      crashPoint('mount:recorded');
      if (state.refilledBytes) {
        log.warn(
          { refilledBytes: state.refilledBytes },
          'preallocated image had lost part of its allocation (a host fstrim punches the free space of mounted volumes): allocated again',
        );
      }
      log.info({ device: state.device, holders: holderCount(this.require(name).holders) }, 'volume mounted');
      return paths.mountPoint;
    });
  }

  /** Undoes a Mount's activation that will not be recorded, unless earlier holders still use it. */
  private async undoActivation(record: VolumeRecord, paths: VolumePaths): Promise<void> {
    if (holderCount(record.holders) > 0) return;
    await this.backendOf(record)
      .deactivate(paths, record)
      .catch(() => undefined);
  }

  async unmount(name: string, id: string | undefined, log: Logger): Promise<void> {
    await this.whenReady(name, async () => {
      const record = this.require(name);
      const { holders, known } = removeHolder(record.holders, id);
      if (known) await this.releaseHolder({ ...record, holders }, log);
      else
        log.warn({ id: id ?? null }, 'unmount from an ID that does not hold the volume; nothing to release');
      crashPoint('unmount:recorded');
      if (holderCount(holders) > 0) return;
      const paths = this.store.layout.volume(name);
      try {
        await this.backendOf(record).deactivate(paths, record);
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
      const record = this.require(name);
      if (parsed.bytes < record.spec.sizeBytes) {
        throw new VolumeError(
          `cannot resize volume ${name} to ${formatSize(parsed.bytes)}: it is ${formatSize(record.spec.sizeBytes)} and shrinking could lose data; copy the data to a smaller volume instead`,
          'invalid',
        );
      }
      const resizing = async () => {
        try {
          await this.backendOf(record).grow(this.store.layout.volume(name), record, parsed.bytes);
          await this.update({ ...record, spec: { ...record.spec, sizeBytes: parsed.bytes } });
        } catch (err) {
          throw wrap(err, `cannot resize volume ${name}`, 'running the same resize again completes it');
        }
        crashPoint('resize:recorded');
        this.measure(this.require(name));
        log.info({ from: record.spec.sizeBytes, to: parsed.bytes }, 'volume resized');
      };
      // Completing an interrupted resize (no growth left to record) takes nothing new.
      const growth = parsed.bytes - record.spec.sizeBytes;
      if (record.spec.backend !== 'loop' || growth === 0) return resizing();
      const request = {
        bytes: growth,
        written: !record.spec.sparse,
        what: `growing a preallocated volume by ${formatSize(growth)}`,
      };
      await this.withSpace(request, `cannot resize volume ${name} to ${formatSize(parsed.bytes)}`, resizing);
    });
  }

  async path(name: string): Promise<string> {
    return this.whenReady(name, async () => {
      const mounted = (await this.inspect(this.require(name))).mounted;
      return mounted ? this.store.layout.volume(name).mountPoint : '';
    });
  }

  /** A handful of stat calls for this one volume, whatever the number of volumes on the host. */
  async get(name: string) {
    return this.whenReady(name, async () => {
      const record = this.require(name);
      const paths = this.store.layout.volume(name);
      const loop = record.spec.backend === 'loop';
      const state = await this.inspect(record);
      const measured = this.measure(record);
      const host = loop ? filesystemUsage(paths.dir) : undefined;
      const usage = state.mounted ? filesystemUsage(paths.mountPoint) : undefined;
      const hostFree = host?.freeBytes ?? null;
      return {
        Name: name,
        Mountpoint: state.mounted ? paths.mountPoint : '',
        CreatedAt: record.createdAt,
        Status: {
          backend: record.spec.backend,
          ...(record.disk ? { disk: record.disk } : {}),
          size: record.spec.sizeBytes,
          fs: record.spec.fs,
          sparse: record.spec.sparse,
          allocated: measured.allocated,
          hostFree,
          ...(loop ? { hostProvisioned: this.ledger.totals().provisionedBytes } : {}),
          ...(loop ? { hostAllocated: this.ledger.totals().allocatedBytes } : {}),
          ...overcommitWarning(this.ledger.totals().sparseGrowthBytes, hostFree),
          mounted: state.mounted,
          holders: holderCount(record.holders),
          // A device whose detach is pending is on its way out, not the volume's device.
          loopDevice: loop && (state.mounted || !state.detaching) ? (state.device ?? null) : null,
          used: usage?.usedBytes ?? null,
          free: usage?.freeBytes ?? null,
          uid: record.spec.uid,
          gid: record.spec.gid,
          mode: `0${record.spec.mode.toString(8)}`,
          mountOptions: record.spec.mountOptions.join(','),
          snapshots: this.store.snapshots.list(name).map((s) => s.name),
          ...this.statusExtras?.(name),
          ...(this.cluster ? { cluster: this.cluster.statusOf(name) } : {}),
        },
      };
    });
  }

  /** One read of mountinfo, however many volumes there are. */
  async list(): Promise<{ Name: string; Mountpoint: string }[]> {
    await this.start();
    const mounted = new Set((await readMounts()).map((m) => m.mountPoint));
    this.sortedNames ??= [...this.records.keys()].sort();
    return this.sortedNames.map((name) => {
      const mountPoint = this.store.layout.volume(name).mountPoint;
      return { Name: name, Mountpoint: mounted.has(mountPoint) ? mountPoint : '' };
    });
  }
  /**
   * The volumes served and their space, for metrics. With `remeasure`, every image is looked at
   * again first (a stat each, yielding between batches): sparse images grow without a request.
   */
  async figures(remeasure: boolean): Promise<{ volumes: number; dataRoot: string } & SpaceTotals> {
    if (remeasure) await this.remeasureAll();
    return { volumes: this.records.size, dataRoot: this.store.layout.root, ...this.ledger.totals() };
  }

  /** Looks at every image again (a stat each, yielding between batches). */
  private async remeasureAll(): Promise<void> {
    for (const [i, record] of [...this.records.values()].entries()) {
      if (i % 256 === 255) await new Promise((resolve) => setImmediate(resolve));
      this.measure(record);
    }
  }

  /** Takes a volume's snapshots into the space totals again, after one was made or removed. */
  remeasure(name: string): void {
    const record = this.records.get(name);
    if (record) this.measure(record);
  }

  /** The names of the volumes served. */
  names(): string[] {
    return [...this.records.keys()];
  }

  /** What a volume was created with, if it is served. */
  specOf(name: string): VolumeSpec | undefined {
    return this.records.get(name)?.spec;
  }

  /** Whether a volume of this name is served. */
  has(name: string): boolean {
    return this.records.has(name);
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
    const record = this.require(name);
    return { record, paths: this.store.layout.volume(name), backend: this.backendOf(record) };
  }

  private async whenReady<T>(name: string, work: () => Promise<T>): Promise<T> {
    await this.start();
    return this.locks.run(name, work);
  }

  private require(name: string): VolumeRecord {
    const record = this.records.get(name);
    if (!record) throw notFound(name);
    return record;
  }

  /**
   * Stats a loop volume's image once, updating the running space totals. `allocated` is null when
   * the image cannot be read (Get still answers); disk volumes live outside the data root.
   */
  private measure(record: VolumeRecord, known?: FileSpace): { allocated: number | null; imageSize?: number } {
    if (record.spec.backend !== 'loop') return { allocated: null };
    const image = known ?? imageSpace(this.store.layout.volume(record.name).image);
    const { sizeBytes, sparse } = record.spec;
    // A snapshot holds what its image occupies: it counts as provisioned and as allocated.
    const snapshots = this.store.snapshots.list(record.name).reduce((sum, s) => sum + s.allocatedBytes, 0);
    this.ledger.set(record.name, {
      sizeBytes: sizeBytes + snapshots,
      allocatedBytes: (image?.allocatedBytes ?? sizeBytes) + snapshots,
      sparse,
    });
    return { allocated: image?.allocatedBytes ?? null, imageSize: image?.sizeBytes };
  }

  /**
   * Records a released holder. Releasing must not depend on the host having space for metadata:
   * if the write fails (host full), the release proceeds in memory and in the kernel, and the next
   * start-up derives the same state from the kernel (an unmounted volume has no holders).
   */
  private async releaseHolder(record: VolumeRecord, log: Logger): Promise<void> {
    try {
      await this.saveHolders(record);
    } catch (err) {
      this.records.set(record.name, record);
      log.error(
        { err: describeError(err) },
        'could not record the unmount (is the host filesystem full?); releasing anyway, a restart re-derives the holders from the kernel',
      );
    }
  }

  private backendOf(record: VolumeRecord): Backend {
    return this.backends[record.spec.backend];
  }

  private inspect(record: VolumeRecord, mounts?: ReadonlySet<string>): Promise<KernelState> {
    return this.backendOf(record).inspect(this.store.layout.volume(record.name), record, mounts);
  }

  /** Records a change of the volume's metadata (durably) and of its holders. */
  private async update(record: VolumeRecord): Promise<void> {
    await this.store.save(record);
    await this.saveHolders(record);
  }

  private async saveHolders(record: VolumeRecord): Promise<void> {
    await this.store.saveHolders(record);
    this.records.set(record.name, record);
  }

  /**
   * Start-up: finish interrupted Creates/Removes, then make each record agree with the kernel.
   * Holders of a volume that is no longer mounted (host reboot, manual umount) are dropped; a volume
   * mounted with no holders (killed mid-Mount or mid-Unmount) is unmounted; one in use stays mounted.
   */
  private async reconcile(): Promise<void> {
    await this.prepare();
    try {
      for (const { leftover, error } of await this.store.sweep()) {
        if (error)
          this.log.error(
            { path: leftover.path, err: error },
            'could not delete a leftover of an interrupted create or remove; it is kept',
          );
        else if (!leftover.keep)
          this.log.info({ path: leftover.path }, 'deleted leftover of an interrupted create or remove');
      }
    } catch (err) {
      this.log.error({ err }, 'could not delete leftovers of interrupted operations; they are kept');
    }
    await Promise.all(Object.values(this.backends).map((b) => b.startup()));
    const { records, images, unreadable, swept } = await this.store.loadAll();
    for (const path of swept) this.log.info({ path }, 'deleted leftover of an interrupted metadata write');
    for (const bad of unreadable) {
      this.unreadable.set(bad.name, bad.reason);
      if (bad.claim) this.heldUnreadable.push({ volume: bad.name, ...bad.claim });
      this.log.error(
        { volume: bad.name, reason: bad.reason, path: this.store.layout.volume(bad.name).dir },
        'volume metadata unreadable: volume not served; repair or move the directory away and restart',
      );
    }
    for (const record of records) this.records.set(record.name, record);
    // One read of mountinfo for all; then each volume costs a stat and, if attached, a sysfs read.
    const mounts = new Set((await readMounts()).map((m) => m.mountPoint));
    await pMap(
      records,
      async (record) => {
        try {
          await this.reconcileOne(await this.upgrade(record), mounts, images.get(record.name));
        } catch (err) {
          this.log.error(
            { volume: record.name, err },
            'could not reconcile volume with the kernel; it is served as recorded',
          );
        }
      },
      { concurrency: RECONCILE_CONCURRENCY },
    );
    this.log.info({ volumes: records.length }, 'state reconciled with the kernel');
    for (const hook of this.startHooks) await hook();
  }

  /** A record an older loopvol wrote, brought up to date by its backend (see Backend.upgrade). */
  private async upgrade(record: VolumeRecord): Promise<VolumeRecord> {
    const volume = record.name;
    let upgraded: Partial<VolumeRecord> | undefined;
    try {
      upgraded = await this.backendOf(record).upgrade?.(this.store.layout.volume(volume), record);
    } catch (err) {
      this.log.warn(
        { volume, disk: record.disk, reason: describeError(err) },
        'disk volume record not upgraded',
      );
      return record;
    }
    if (!upgraded) return record;
    const next = { ...record, ...upgraded };
    await this.store.save(next);
    this.records.set(volume, next);
    this.log.info(
      { volume, from: record.disk, disk: next.disk, fsUuid: next.fsUuid },
      'disk volume record upgraded: its disk is now named by stable id and checked by filesystem UUID',
    );
    return next;
  }

  private async reconcileOne(
    record: VolumeRecord,
    mounts: ReadonlySet<string>,
    image: FileSpace | undefined,
  ): Promise<void> {
    // No child logger: most volumes log nothing here, and a child costs more than the rest.
    const volume = record.name;
    const paths = this.store.layout.volume(record.name);
    const { imageSize } = this.measure(record, image);
    if (imageSize !== undefined && imageSize > record.spec.sizeBytes) {
      this.log.warn(
        { volume, recorded: record.spec.sizeBytes, image: imageSize },
        `a resize was interrupted: run "loopvol resize ${record.name} ${imageSize}B" again to complete it`,
      );
    }
    const state = await this.inspect(record, mounts);
    const count = holderCount(record.holders);
    if (state.mounted && count > 0) {
      this.log.info({ volume, holders: count, device: state.device }, 'volume in use stays mounted');
      return;
    }
    if (count > 0) {
      this.log.warn(
        { volume, dropped: record.holders },
        'volume is no longer mounted (reboot or manual umount): dropping its holders',
      );
      await this.saveHolders({ ...record, holders: {} });
    }
    if (state.mounted || state.device) {
      this.log.warn(
        { volume, device: state.device },
        'volume attached without holders (interrupted mount or unmount): releasing it',
      );
      await this.backendOf(record).deactivate(paths, record);
    }
  }
}

/** A volume image's space, or undefined when it cannot be read (Get still answers). */
function imageSpace(image: string): FileSpace | undefined {
  try {
    return fileSpace(image);
  } catch {
    return undefined;
  }
}

/** Volumes reconciled at once at start-up. */
const RECONCILE_CONCURRENCY = 32;

/**
 * Sparse images grow as containers write; when the host filesystem cannot hold what they may still
 * grow by, writes inside a volume fail with I/O errors before the volume looks full.
 */
function overcommitWarning(growth: number, hostFree: number | null) {
  if (hostFree === null || growth <= hostFree) return {};
  return {
    warning: `host filesystem has ${formatSize(hostFree)} free but the sparse volumes on it may still grow by ${formatSize(growth)}: free space on the host or writes will fail with I/O errors`,
  };
}

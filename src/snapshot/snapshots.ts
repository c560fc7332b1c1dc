import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { CloneProvider, ImageSource } from '../core/clone.js';
import { VolumeError, wrap } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import { volumeName } from '../core/name.js';
import type { CloneSource } from '../core/options.js';
import { formatSize } from '../core/size.js';
import type { VolumeRecord } from '../state/record.js';
import type { SnapshotEntry } from '../state/snapshot-store.js';
import type { Store } from '../state/store.js';
import { type CopyMethod, copyImage } from '../system/copy-image.js';
import { freezeFilesystem, NotTheVolume, thawFilesystem } from '../system/freeze.js';
import { fileSpace, filesystemUsage } from '../system/fsstat.js';
import { isMountPoint } from '../system/mountpoint.js';
import type { Maintained, VolumePort } from '../volume/port.js';
import type { SpaceRequest } from '../volume/space-guard.js';

/** How snapshots of mounted volumes are taken; every field has a default in the daemon's config. */
export interface SnapshotOptions {
  /** A block-by-block copy of a mounted volume that would keep it frozen longer is refused (unless forced). */
  maxFreezeMs: number;
  /** What a copy is assumed to move per second, for that estimate (limits.md: 600 MiB/s and up here). */
  copyBytesPerSecond: number;
}

const noSnapshot = (volume: string, snapshot: string) =>
  new VolumeError(
    `volume ${volume} has no snapshot ${snapshot}: see "loopvol snapshot ls ${volume}"`,
    'not-found',
  );

/** A snapshot's default name: when it was taken, to the second (UTC). */
const timestampName = () =>
  new Date()
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');

/**
 * Snapshots of loop volumes, in use or not: a copy of the image, made while the mounted
 * filesystem is frozen (FIFREEZE, always thawed, also after a crash: see recover), so it is
 * crash-consistent. A reflink where the data root's filesystem can share blocks (instant), a
 * sparse copy elsewhere. The work runs under the volume's lock: its own requests wait for the
 * copy, other volumes' do not.
 */
export class Snapshots implements CloneProvider<Maintained> {
  /** Whether the data root's filesystem makes reflinks; probed once. */
  private reflinkable: Promise<boolean> | undefined;

  constructor(
    private readonly store: Store,
    private readonly service: VolumePort,
    private readonly options: SnapshotOptions,
  ) {}

  async create(name: string, snap: string | undefined, force: boolean, log: Logger): Promise<SnapshotEntry> {
    const snapName = snap ?? timestampName();
    const valid = volumeName.safeParse(snapName);
    if (!valid.success)
      throw new VolumeError(
        `snapshot name ${JSON.stringify(snapName)}: ${valid.error.issues[0]?.message}`,
        'invalid',
      );
    return this.service.maintain(name, async (volume) => {
      if (this.store.snapshots.get(name, snapName)) {
        throw new VolumeError(
          `volume ${name} already has a snapshot ${snapName}: pick another name`,
          'conflict',
        );
      }
      const request = await this.copyRequest(volume);
      return this.service.withSpace(request, `cannot snapshot volume ${name}`, async () => {
        const staged = await this.store.snapshots.stage(name);
        const started = Date.now();
        try {
          const { method, frozen } = await this.copyVolume(volume, join(staged, 'disk.img'), force, log);
          crashPoint('snapshot:copied');
          const entry = await this.store.snapshots.commit(name, staged, {
            version: 1,
            name: snapName,
            createdAt: new Date().toISOString(),
            sizeBytes: volume.record.spec.sizeBytes,
            fs: volume.record.spec.fs,
            method,
            frozen,
          });
          this.service.remeasure(name);
          log.info(
            { snapshot: snapName, method, frozen, ms: Date.now() - started, allocated: entry.allocatedBytes },
            'snapshot taken',
          );
          return entry;
        } catch (err) {
          await this.store.snapshots.discard(staged).catch(() => undefined);
          throw err;
        }
      });
    });
  }

  /**
   * The copy behind a clone (`-o from=NAME` or `from=NAME@SNAP`): a volume is copied as a snapshot
   * would be (frozen if mounted), a snapshot as it is. The Create holds the source's lock (see
   * CloneProvider) and admits the clone's space as a volume's.
   */
  sourceOf(_name: string, from: CloneSource, volume: Maintained | undefined, log: Logger): ImageSource {
    const { source, snapshot } = cloneSource(from, volume);
    return async (dest) => {
      const { spec } = source.record;
      if (snapshot === undefined) {
        await this.copyVolume(source, dest, false, log);
        return { fs: spec.fs, sizeBytes: spec.sizeBytes };
      }
      const snap = this.snapshotOf(source, snapshot);
      await copyImage(this.store.snapshots.image(source.record.name, snap.name), dest);
      return { fs: snap.fs, sizeBytes: snap.sizeBytes };
    };
  }

  /**
   * Copies volume `name` as a snapshot would be copied, into a directory that start-up deletes if
   * the plugin dies first; `use` gets the copy (a backup reads it), and it is deleted afterwards.
   */
  async withCopy<T>(
    name: string,
    log: Logger,
    use: (image: string, volume: Maintained) => Promise<T>,
  ): Promise<T> {
    let volume: Maintained | undefined;
    const staged = await this.service.maintain(name, async (v) => {
      volume = v;
      // Held while the copy is made; once written, the free space shows it.
      return this.service.withSpace(await this.copyRequest(v), `cannot copy volume ${name}`, async () => {
        const dir = await this.store.snapshots.stage(name);
        try {
          await this.copyVolume(v, join(dir, 'disk.img'), false, log);
        } catch (err) {
          await this.store.snapshots.discard(dir);
          throw err;
        }
        return dir;
      });
    });
    try {
      return await use(join(staged, 'disk.img'), volume as Maintained);
    } finally {
      await this.store.snapshots.discard(staged);
    }
  }

  /** What a clone of `from` will copy: the volume's size now, or the snapshot's. */
  async sizeOf(_name: string, from: CloneSource, volume: Maintained | undefined): Promise<number> {
    const { source, snapshot } = cloneSource(from, volume);
    if (snapshot === undefined) return source.record.spec.sizeBytes;
    return this.snapshotOf(source, snapshot).sizeBytes;
  }

  private snapshotOf({ record }: Maintained, snapshot: string): SnapshotEntry {
    const snap = this.store.snapshots.get(record.name, snapshot);
    if (!snap) throw noSnapshot(record.name, snapshot);
    return snap;
  }

  /**
   * What a copy of a loop volume may take, for the space guard: what its image occupies, or what
   * its mounted filesystem uses if more (the freeze flushes that into the image). A reflink
   * takes nothing at first, but as much once the volume and its copy diverge.
   */
  private async copyRequest({ record, paths, backend }: Maintained): Promise<SpaceRequest> {
    assertLoop(record);
    const mounted = (await backend.inspect(paths, record)).mounted;
    const bytes = copyBytes(paths.image, mounted ? paths.mountPoint : undefined);
    return { bytes, written: true, what: `a copy of ${formatSize(bytes)}` };
  }

  /** Copies a loop volume's image to `dest`: frozen while it is mounted. Runs under the volume's lock. */
  private async copyVolume(
    { record, paths, backend }: Maintained,
    dest: string,
    force: boolean,
    log: Logger,
  ): Promise<{ method: CopyMethod; frozen: boolean }> {
    assertLoop(record);
    const { mounted, device } = await backend.inspect(paths, record);
    if (!mounted) return { method: await copyImage(paths.image, dest), frozen: false };
    if (!force && !(await this.reflinks())) this.checkFreeze(record.name, paths.image, paths.mountPoint);
    const copy = () => copyImage(paths.image, dest);
    const method = await this.whileFrozen(record.name, paths.mountPoint, device, 'copy', log, copy);
    return { method, frozen: true };
  }

  /**
   * Runs `use` on loop volume `name`'s mounted filesystem while it is frozen (a backup reads it
   * there: what it reads is consistent), under the volume's lock; undefined when the volume is not
   * mounted. `use` must not write to it and must end within `withinMs`, --max-freeze: the
   * volume's writers wait meanwhile.
   */
  async withFrozen<T>(
    name: string,
    log: Logger,
    use: (frozen: { mountPoint: string; device: string; withinMs: number }, volume: Maintained) => Promise<T>,
  ): Promise<{ result: T } | undefined> {
    return this.service.maintain(name, async (volume) => {
      const { record, paths, backend } = volume;
      assertLoop(record);
      const { mounted, device } = await backend.inspect(paths, record);
      if (!mounted) return undefined;
      const { mountPoint } = paths;
      const read = (live: string) =>
        use({ mountPoint, device: live, withinMs: this.options.maxFreezeMs }, volume);
      return { result: await this.whileFrozen(name, mountPoint, device, 'back up', log, read) };
    });
  }

  /**
   * Freezes the filesystem of volume `name` (the marker first, for recover), runs `use` and thaws
   * whatever happens. Errors other than VolumeErrors say they stopped the `what` of the volume.
   */
  private async whileFrozen<T>(
    name: string,
    mountPoint: string,
    device: string | undefined,
    what: 'copy' | 'back up',
    log: Logger,
    use: (device: string) => Promise<T>,
  ): Promise<T> {
    try {
      if (!device) throw new NotTheVolume(`${mountPoint} is mounted, but volume ${name} has no loop device`);
      await this.store.snapshots.markFrozen(name);
      crashPoint('snapshot:marked');
      const frozenAt = Date.now();
      let thaw: () => Promise<void>;
      try {
        thaw = await freezeFilesystem(mountPoint, device);
      } catch (err) {
        await this.store.snapshots.clearFrozen(name);
        throw err;
      }
      try {
        crashPoint(what === 'copy' ? 'snapshot:frozen' : 'backup:frozen');
        return await use(device);
      } finally {
        await thaw();
        log.debug({ frozenMs: Date.now() - frozenAt }, 'volume thawed');
        await this.store.snapshots.clearFrozen(name);
      }
    } catch (err) {
      if (err instanceof VolumeError) throw err;
      if (err instanceof NotTheVolume) {
        throw new VolumeError(
          `cannot ${what} volume ${name}: ${err.message}; restart loopvol (it reconciles what it serves with the kernel), then retry`,
          'conflict',
        );
      }
      throw wrap(err, `cannot ${what} volume ${name}`);
    }
  }

  list(name: string): Promise<SnapshotEntry[]> {
    return this.service.maintain(name, async () => this.store.snapshots.list(name));
  }

  async remove(name: string, snap: string, log: Logger): Promise<void> {
    await this.service.maintain(name, async () => {
      if (!this.store.snapshots.get(name, snap)) {
        throw new VolumeError(
          `volume ${name} has no snapshot ${snap}: see "loopvol snapshot ls ${name}"`,
          'not-found',
        );
      }
      await this.store.snapshots.remove(name, snap);
      this.service.remeasure(name);
      log.info({ snapshot: snap }, 'snapshot removed');
    });
  }

  /**
   * Start-up: thaws what a crash left frozen (the marker is written before the freeze), deletes
   * snapshots a crash left half-made, and reports unreadable ones. Runs before requests are served.
   */
  /** `mayThaw`: in cluster mode, whether the cluster lets the volume be written (else its fence thaws it). */
  async recover(log: Logger, mayThaw: (name: string) => boolean = () => true): Promise<void> {
    for (const found of this.store.snapshots.takeLeftovers()) {
      const vlog = log.child({ volume: found.volume });
      if (found.frozen) {
        const mountPoint = this.store.layout.volume(found.volume).mountPoint;
        try {
          if (!mayThaw(found.volume)) {
            vlog.warn('a snapshot was interrupted while the volume was frozen: left to the cluster fence');
          } else if (isMountPoint(mountPoint)) await thawFilesystem(mountPoint);
          await this.store.snapshots.clearFrozen(found.volume);
          vlog.warn('a snapshot was interrupted while the volume was frozen: thawed it');
        } catch (err) {
          vlog.error(
            { err: (err as Error).message },
            `could not thaw the volume: run "fsfreeze -u ${mountPoint}"`,
          );
        }
      }
      for (const path of found.partials) {
        await this.store.snapshots.discard(path);
        vlog.info({ path }, 'deleted a snapshot an interrupted create or remove left');
      }
      for (const path of found.unreadable) {
        vlog.error(
          { path },
          'snapshot record unreadable: not listed; repair snapshot.json or delete the directory',
        );
      }
    }
  }

  /** Refuses a block-by-block copy of a mounted volume that would keep it frozen too long. */
  private checkFreeze(name: string, image: string, mountPoint: string): void {
    const bytes = copyBytes(image, mountPoint);
    const ms = (bytes / this.options.copyBytesPerSecond) * 1000;
    if (ms <= this.options.maxFreezeMs) return;
    throw new VolumeError(
      `a snapshot of volume ${name} copies ${formatSize(bytes)} while it is frozen, about ${(ms / 1000).toFixed(1)} s, over --max-freeze ${(this.options.maxFreezeMs / 1000).toFixed(1)} s: ` +
        'stop what uses it, put the data root on xfs (reflink snapshots are instant), or force it (--force)',
      'conflict',
    );
  }

  /** Probes the data root once: can a file there be reflinked? */
  private reflinks(): Promise<boolean> {
    this.reflinkable ??= (async () => {
      const probe = join(this.store.layout.root, '.reflink-probe');
      await writeFile(probe, 'x');
      try {
        return (await copyImage(probe, `${probe}-copy`)) === 'reflink';
      } finally {
        await rm(probe, { force: true });
        await rm(`${probe}-copy`, { force: true });
      }
    })();
    return this.reflinkable;
  }
}

/** What a copy of an image moves: of a mounted volume, what the freeze flushes counts too. */
function copyBytes(image: string, mountPoint: string | undefined): number {
  const allocated = fileSpace(image).allocatedBytes;
  return mountPoint ? Math.max(allocated, filesystemUsage(mountPoint).usedBytes) : allocated;
}

function assertLoop(record: VolumeRecord): void {
  if (record.spec.backend === 'loop') return;
  throw new VolumeError(
    `volume ${record.name} is a whole disk: only loop volumes are snapshotted or cloned`,
    'invalid',
  );
}

/** The volume a clone copies, and which of its snapshots if one (a backup is the restores' room). */
function cloneSource(
  from: CloneSource,
  volume: Maintained | undefined,
): { source: Maintained; snapshot: string | undefined } {
  if ('backup' in from)
    throw new VolumeError('restores from backups need --backup-repo on the daemon', 'invalid');
  if (!volume) throw new Error(`a clone's Create passes its source volume ${from.volume}`);
  return { source: volume, snapshot: from.snapshot };
}

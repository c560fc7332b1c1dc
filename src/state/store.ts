import { randomBytes } from 'node:crypto';
import { type Dirent, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rename, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint } from '../core/faults.js';
import type { Holders } from '../core/holders.js';
import type { FileSpace } from '../system/fsstat.js';
import { listLoops } from '../system/loop-sysfs.js';
import { readMounts } from '../system/mountinfo.js';
import { isMountPoint } from '../system/mountpoint.js';
import { isAtomicTemp, syncDir, writeFileAtomic, writeNewFile } from './atomic.js';
import { type DiskClaim, parseDiskClaim } from './disk-claim.js';
import {
  CLAIM_FILE,
  HOLDERS_FILE,
  IMAGE_FILE,
  type Layout,
  META_FILE,
  type VolumePaths,
  volumePathsIn,
} from './layout.js';
import { parseHolders, parseRecord, serializeHolders, serializeRecord, type VolumeRecord } from './record.js';
import { SNAPSHOTS_DIR, SnapshotStore } from './snapshot-store.js';

/** Volumes read at start-up between two turns of the event loop. */
const YIELD_EVERY = 64;

/**
 * Reads a metadata file synchronously when its directory listing says it is a regular file;
 * anything else (a FIFO, a device someone put there) could block the whole daemon, so it is read
 * on the thread pool instead. The listing's file types save a stat a file at start-up.
 */
async function readSmallFile(path: string, regular: boolean): Promise<string> {
  return regular ? readFileSync(path, 'utf8') : readFile(path, 'utf8');
}

/** A volume directory whose volume.json could not be read: left alone and reported. */
export interface UnreadableVolume {
  name: string;
  reason: string;
  /** The disk it holds, from its disk-claim.json (a disk volume's): no other volume may take it. */
  claim?: DiskClaim;
}

/**
 * Persists volume records under the data root. Every change is one atomic rename, so the plugin
 * killed at any instant restarts into either the old or the new state.
 */
/** Something an interrupted Create or Remove left under the data root (or the mount root). */
export interface Leftover {
  kind: 'staging' | 'trash' | 'mountpoint';
  path: string;
  /** Why it stays: a Create or Remove is working in it right now, or it is not empty. */
  keep?: string;
}

export class Store {
  readonly snapshots: SnapshotStore;

  constructor(readonly layout: Layout) {
    this.snapshots = new SnapshotStore(layout);
  }

  /** Staging and trash directories a Create or Remove of this process is working in: never leftovers. */
  private readonly inFlight = new Set<string>();

  /**
   * Creates the data root, private to root because images hold container data. A directory found
   * open to others is tightened to 0700 and reported; a symlink in its place is refused.
   */
  async init(): Promise<string[]> {
    const repaired: string[] = [];
    const { root, volumes, staging, trash, mountRoot } = this.layout;
    for (const dir of [root, volumes, staging, trash, ...(mountRoot ? [mountRoot] : [])]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const info = await lstat(dir);
      if (!info.isDirectory())
        throw new Error(`${dir} is not a plain directory (symlink?): refusing to use it`);
      if ((info.mode & 0o077) !== 0) {
        await chmod(dir, 0o700);
        repaired.push(`${dir} was mode 0${(info.mode & 0o777).toString(8)}`);
      }
    }
    return repaired;
  }

  /**
   * Reads every volume's record in one pass over volumes/, deleting the temp files interrupted
   * metadata writes left in each directory. Linear in the number of volumes, and fast: the reads
   * are synchronous (a tenth of the cost of fs/promises for small files), yielding to the event
   * loop every few dozen volumes so that the socket keeps answering during a large start-up.
   */
  async loadAll(): Promise<{
    records: VolumeRecord[];
    /** Each loop volume's image as found (a missing image is absent). */
    images: Map<string, FileSpace>;
    unreadable: UnreadableVolume[];
    swept: string[];
  }> {
    const records: VolumeRecord[] = [];
    const images = new Map<string, FileSpace>();
    const unreadable: UnreadableVolume[] = [];
    const swept: string[] = [];
    const names = readdirSync(this.layout.volumes);
    for (const [i, name] of names.entries()) {
      if (i % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      const paths = this.layout.volume(name);
      let listing: Dirent[] = [];
      try {
        listing = readdirSync(paths.dir, { withFileTypes: true });
      } catch {}
      const entries = listing.map((e) => e.name);
      const regular = (file: string) => listing.some((e) => e.name === file && e.isFile());
      for (const temp of entries.filter(isAtomicTemp).map((t) => join(paths.dir, t))) {
        rmSync(temp, { force: true });
        swept.push(temp);
      }
      try {
        const record = parseRecord(await readSmallFile(paths.meta, regular(META_FILE)));
        if (record.name !== name) throw new Error(`it names volume ${record.name}`);
        if (entries.includes(HOLDERS_FILE))
          record.holders = await this.loadHolders(paths.holders, regular(HOLDERS_FILE), record);
        const image = entries.includes(IMAGE_FILE)
          ? statSync(paths.image, { throwIfNoEntry: false })
          : undefined;
        if (image) images.set(name, { sizeBytes: image.size, allocatedBytes: image.blocks * 512 });
        if (entries.includes(SNAPSHOTS_DIR)) this.snapshots.load(name);
        records.push(record);
      } catch (err) {
        const claim = entries.includes(CLAIM_FILE)
          ? await this.loadClaim(paths, regular(CLAIM_FILE))
          : undefined;
        unreadable.push({ name, reason: (err as Error).message, ...(claim ? { claim } : {}) });
      }
    }
    return { records, images, unreadable, swept };
  }

  /** An unreadable volume's claim on its disk; a damaged claim file claims nothing it could name. */
  private async loadClaim(paths: VolumePaths, regular: boolean): Promise<DiskClaim | undefined> {
    try {
      return parseDiskClaim(await readSmallFile(paths.claim, regular));
    } catch {
      return undefined;
    }
  }

  /**
   * A holders file that a power cut left empty or torn (it is not fsynced) counts as none: after a
   * power cut nothing is mounted, so reconcile would drop every holder anyway.
   */
  private async loadHolders(path: string, regular: boolean, record: VolumeRecord): Promise<Holders> {
    try {
      return parseHolders(await readSmallFile(path, regular));
    } catch {
      return record.holders;
    }
  }

  /** Writes the record (not its holders) durably: it must survive a power cut. */
  async save(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(this.layout.volume(record.name).meta, serializeRecord(record));
  }

  /**
   * Writes who holds the volume, atomically but without fsync: holders only matter while the
   * volume is mounted, a crash of the plugin keeps the page cache, and after a power cut nothing is
   * mounted and reconcile drops them. Saves the two fsyncs on every Mount and Unmount.
   */
  async saveHolders(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(this.layout.volume(record.name).holders, serializeHolders(record.holders), {
      durable: false,
    });
  }

  /**
   * Whether `file` is in a directory a Create, Remove, snapshot or backup of this process is
   * working in: gc leaves its loop device alone (a restore or a backup has it mounted).
   */
  working(file: string): boolean {
    return [...this.inFlight].some((dir) => file.startsWith(`${dir}/`)) || this.snapshots.working(file);
  }

  /** A fresh directory for a Create to build in; invisible to List until commit(). */
  async stage(): Promise<VolumePaths> {
    const dir = join(this.layout.staging, randomBytes(8).toString('hex'));
    this.inFlight.add(dir);
    await mkdir(dir, { mode: 0o700 });
    crashPoint('create:staged');
    return volumePathsIn(dir);
  }

  /**
   * Writes the record into the staged directory and renames it into place: the volume now exists.
   * Nothing sees the staged directory, so its record needs no temp file; one fsync of volumes/
   * commits the rename, and with it the entry's removal from staging/ (one journal transaction).
   */
  async commit(staged: VolumePaths, record: VolumeRecord): Promise<void> {
    await writeNewFile(staged.meta, serializeRecord(record), 0o600);
    await rename(staged.dir, this.layout.volume(record.name).dir);
    this.inFlight.delete(staged.dir);
    await syncDir(this.layout.volumes);
    crashPoint('create:committed');
  }

  /**
   * Moves a volume out of volumes/ in one durable rename: it no longer exists. Returns the deletion
   * of its files, which the caller may finish after answering (start-up deletes what is left).
   */
  async discard(name: string): Promise<() => Promise<void>> {
    const target = join(this.layout.trash, randomBytes(8).toString('hex'));
    this.inFlight.add(target);
    try {
      await rename(this.layout.volume(name).dir, target);
    } catch (err) {
      this.inFlight.delete(target);
      throw err;
    }
    await syncDir(this.layout.volumes);
    crashPoint('remove:trashed');
    await this.removeMountPoint(name);
    return async () => {
      try {
        await this.emptyDir(this.layout.trash, target);
      } finally {
        this.inFlight.delete(target);
      }
      crashPoint('remove:deleted');
    };
  }

  /**
   * Deletes a volume's mountpoint under the mount root, if empty: rmdir fails on a live mount
   * (EBUSY), and files someone wrote into an unmounted mountpoint are not the plugin's to delete.
   */
  private async removeMountPoint(name: string): Promise<void> {
    if (!this.layout.mountRoot) return;
    try {
      await rmdir(join(this.layout.mountRoot, name));
    } catch (err) {
      if (!['ENOENT', 'ENOTEMPTY', 'EBUSY', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? ''))
        throw err;
    }
  }

  async discardStaged(staged: VolumePaths): Promise<void> {
    try {
      await this.emptyDir(this.layout.staging, staged.dir);
    } finally {
      this.inFlight.delete(staged.dir);
    }
  }

  /**
   * What interrupted Creates and Removes left: staging and trash directories no request of this
   * process is working in, and mountpoints under the mount root whose volume is gone (a crash
   * between the rename and the rmdir).
   */
  async leftovers(): Promise<Leftover[]> {
    const found: Leftover[] = [];
    for (const [kind, parent] of [
      ['staging', this.layout.staging],
      ['trash', this.layout.trash],
    ] as const) {
      for (const entry of await readdir(parent)) {
        const path = join(parent, entry);
        const keep = this.inFlight.has(path)
          ? `a ${kind === 'staging' ? 'Create' : 'Remove'} is working in it`
          : undefined;
        found.push({ kind, path, ...(keep ? { keep } : {}) });
      }
    }
    if (this.layout.mountRoot) {
      const volumes = new Set(await readdir(this.layout.volumes));
      for (const name of await readdir(this.layout.mountRoot)) {
        if (volumes.has(name)) continue;
        const path = join(this.layout.mountRoot, name);
        const keep = isMountPoint(path)
          ? `something is mounted on it: unmount it (umount ${path}) if nothing should be`
          : (await readdir(path).catch(() => [''])).length > 0
            ? "it is not an empty directory: what is in it is not loopvol's to delete"
            : undefined;
        found.push({ kind: 'mountpoint', path, ...(keep ? { keep } : {}) });
      }
    }
    return found;
  }

  /**
   * Deletes the leftovers (see leftovers()) not marked to keep; with `dryRun`, only lists them. A
   * directory with an image a loop device still serves is kept (gc detaches what it may first;
   * `released` are the images a dry run of gc would have released). A failed deletion is reported
   * in `error` and the rest go on.
   */
  async sweep(
    dryRun = false,
    released: readonly string[] = [],
  ): Promise<{ leftover: Leftover; error?: string }[]> {
    // The loop devices are read only when there is a leftover to check them against: a start-up
    // after a clean stop finds none and saves a scan of every loop device on the host.
    let served: string[] | undefined;
    const hold = async (path: string) => {
      served ??= (await listLoops()).map((l) => l.backingFile).filter((f) => !released.includes(f));
      return served.some((file) => file.startsWith(`${path}/`))
        ? 'a loop device still serves an image in it (gc detaches it when nothing mounts it)'
        : undefined;
    };
    const results: { leftover: Leftover; error?: string }[] = [];
    for (const found of await this.leftovers()) {
      const keep = found.keep ?? (await hold(found.path));
      const leftover = keep ? { ...found, keep } : found;
      if (dryRun || keep) {
        results.push({ leftover });
        continue;
      }
      try {
        if (leftover.kind === 'mountpoint') await rmdir(leftover.path);
        else
          await this.emptyDir(
            leftover.kind === 'staging' ? this.layout.staging : this.layout.trash,
            leftover.path,
          );
        results.push({ leftover });
      } catch (err) {
        results.push({ leftover, error: (err as Error).message });
      }
    }
    return results;
  }

  /**
   * rm -r crosses mountpoints: deleting a tree with a live mount inside would delete a volume's
   * data. Refuse instead; the caller unmounts first.
   */
  private async emptyDir(parent: string, path: string): Promise<void> {
    const inside = (await readMounts()).find(
      (m) => m.mountPoint === path || m.mountPoint.startsWith(`${path}/`),
    );
    if (inside) throw new Error(`refusing to delete ${path}: ${inside.mountPoint} is still mounted there`);
    await rm(path, { recursive: true, force: true });
    await syncDir(parent);
  }
}

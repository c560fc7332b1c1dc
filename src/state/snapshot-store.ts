import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { syncDir, writeFileAtomic, writeNewFile } from './atomic.js';
import type { Layout } from './layout.js';

/**
 * A volume's snapshots live in its directory, so they go wherever it goes:
 *   volumes/<name>/snapshots/<snap>/disk.img        the frozen copy of the image
 *   volumes/<name>/snapshots/<snap>/snapshot.json   what it is (written last: a snapshot exists when it does)
 *   volumes/<name>/snapshots/.partial-<random>/     a snapshot being made; deleted at start-up
 *   volumes/<name>/snapshots/.frozen                the volume is frozen for a copy; start-up thaws it
 */
export const snapshotRecord = z.object({
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  /** The volume's size when the snapshot was taken. */
  sizeBytes: z.number().int().nonnegative(),
  fs: z.enum(['ext4', 'xfs']),
  method: z.enum(['reflink', 'copy']),
  /** The volume was mounted and frozen for the copy (crash-consistent), or not mounted at all. */
  frozen: z.boolean(),
});
export type SnapshotRecord = z.infer<typeof snapshotRecord>;

export const SNAPSHOTS_DIR = 'snapshots';
const RECORD_FILE = 'snapshot.json';
const IMAGE_FILE = 'disk.img';
const PARTIAL_PREFIX = '.partial-';
const FROZEN_MARKER = '.frozen';

/** A snapshot as listed: its record, and what its image occupies on the host. */
export interface SnapshotEntry extends SnapshotRecord {
  allocatedBytes: number;
}

/** What start-up found of a volume's interrupted snapshot work (see Snapshots.recover). */
export interface SnapshotLeftovers {
  volume: string;
  /** Directories of snapshots being made or removed when the plugin died. */
  partials: string[];
  /** The volume was left frozen. */
  frozen: boolean;
  /** Snapshot directories whose record cannot be read: kept, reported. */
  unreadable: string[];
}

/** The snapshots of every volume, read from disk once and kept current by the methods below. */
export class SnapshotStore {
  private readonly byVolume = new Map<string, Map<string, SnapshotEntry>>();
  /** What load() found for recovery to deal with; taken once. */
  private leftovers: SnapshotLeftovers[] = [];
  /** Staged directories this process is copying into or reading (a backup mounts its copy). */
  private readonly inFlight = new Set<string>();

  constructor(private readonly layout: Layout) {}

  dir(volume: string): string {
    return join(this.layout.volume(volume).dir, SNAPSHOTS_DIR);
  }

  image(volume: string, snap: string): string {
    return join(this.dir(volume), snap, IMAGE_FILE);
  }

  frozenMarker(volume: string): string {
    return join(this.dir(volume), FROZEN_MARKER);
  }

  /**
   * Reads a volume's snapshots (start-up). A directory without its record is what an interrupted
   * create or remove left; one whose record cannot be parsed is kept and reported.
   */
  load(volume: string): void {
    const dir = this.dir(volume);
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    const snaps = new Map<string, SnapshotEntry>();
    const unreadable: string[] = [];
    const partials = entries.filter((e) => e.startsWith(PARTIAL_PREFIX)).map((e) => join(dir, e));
    for (const entry of entries.filter((e) => !e.startsWith('.'))) {
      if (!existsSync(join(dir, entry, RECORD_FILE))) {
        partials.push(join(dir, entry));
        continue;
      }
      try {
        const record = snapshotRecord.parse(JSON.parse(readFileSync(join(dir, entry, RECORD_FILE), 'utf8')));
        snaps.set(entry, { ...record, allocatedBytes: statSync(join(dir, entry, IMAGE_FILE)).blocks * 512 });
      } catch {
        unreadable.push(join(dir, entry));
      }
    }
    if (snaps.size > 0) this.byVolume.set(volume, snaps);
    const frozen = entries.includes(FROZEN_MARKER);
    if (partials.length > 0 || frozen || unreadable.length > 0) {
      this.leftovers.push({ volume, partials, frozen, unreadable });
    }
  }

  /** What load() found to recover, once. */
  takeLeftovers(): SnapshotLeftovers[] {
    const found = this.leftovers;
    this.leftovers = [];
    return found;
  }

  list(volume: string): SnapshotEntry[] {
    return [...(this.byVolume.get(volume)?.values() ?? [])].sort((a, b) =>
      a.createdAt.localeCompare(b.createdAt),
    );
  }

  get(volume: string, snap: string): SnapshotEntry | undefined {
    return this.byVolume.get(volume)?.get(snap);
  }

  /** A fresh directory to copy a snapshot into; invisible to list() until commit(). */
  async stage(volume: string): Promise<string> {
    await mkdir(this.dir(volume), { recursive: true, mode: 0o700 });
    const staged = join(this.dir(volume), `${PARTIAL_PREFIX}${randomBytes(8).toString('hex')}`);
    await mkdir(staged, { mode: 0o700 });
    this.inFlight.add(staged);
    return staged;
  }

  /** Writes the record beside the copied image and renames the directory into place, durably. */
  async commit(volume: string, staged: string, record: SnapshotRecord): Promise<SnapshotEntry> {
    await writeNewFile(join(staged, RECORD_FILE), JSON.stringify(record, null, 2), 0o600);
    await syncDir(staged);
    await rename(staged, join(this.dir(volume), record.name));
    this.inFlight.delete(staged);
    await syncDir(this.dir(volume));
    const entry = {
      ...record,
      allocatedBytes: statSync(join(this.dir(volume), record.name, IMAGE_FILE)).blocks * 512,
    };
    const snaps = this.byVolume.get(volume) ?? new Map<string, SnapshotEntry>();
    snaps.set(record.name, entry);
    this.byVolume.set(volume, snaps);
    return entry;
  }

  /** Deletes a snapshot: first its record (it no longer exists), then its files. */
  async remove(volume: string, snap: string): Promise<void> {
    const dir = join(this.dir(volume), snap);
    await rm(join(dir, RECORD_FILE), { force: true });
    await syncDir(dir);
    this.byVolume.get(volume)?.delete(snap);
    await rm(dir, { recursive: true, force: true });
  }

  /** Deletes what a snapshot interrupted by a crash left. */
  async discard(path: string): Promise<void> {
    await rm(path, { recursive: true, force: true });
    this.inFlight.delete(path);
  }

  /** Whether `file` is in a directory a snapshot or backup of this process is working in. */
  working(file: string): boolean {
    return [...this.inFlight].some((dir) => file.startsWith(`${dir}/`));
  }

  /** Notes (durably) that the volume is about to be frozen, so that a start-up after a crash thaws it. */
  async markFrozen(volume: string): Promise<void> {
    await mkdir(this.dir(volume), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.frozenMarker(volume), `${process.pid}\n`);
  }

  async clearFrozen(volume: string): Promise<void> {
    await rm(this.frozenMarker(volume), { force: true });
  }

  /** Forgets a removed volume's snapshots (there are none: removal is refused while any exist). */
  forget(volume: string): void {
    this.byVolume.delete(volume);
  }
}

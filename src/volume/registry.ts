import type { Logger } from 'pino';
import type { HeldDisk } from '../backend/backend.js';
import { describeError, notFound } from '../core/errors.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';

/**
 * The records of the volumes served, in memory, and the writes that keep them durable (metadata,
 * holders). Also what start-up could not read: those volumes are not served, their disks stay held.
 */
export class Registry {
  private readonly records = new Map<string, VolumeRecord>();
  /** List's order, kept until a Create or Remove changes the set of names. */
  private sorted: string[] | undefined;
  /** Volume directories whose metadata start-up could not read, with why: not served. */
  readonly unreadable = new Map<string, string>();
  /** Disks held by volumes whose record start-up could not read, from their claim files. */
  readonly heldUnreadable: HeldDisk[] = [];

  constructor(private readonly store: Store) {}

  get size(): number {
    return this.records.size;
  }

  get(name: string): VolumeRecord | undefined {
    return this.records.get(name);
  }

  has(name: string): boolean {
    return this.records.has(name);
  }

  require(name: string): VolumeRecord {
    const record = this.records.get(name);
    if (!record) throw notFound(name);
    return record;
  }

  /** Records a volume's state in memory only (the caller wrote it, or need not). */
  set(record: VolumeRecord): void {
    if (!this.records.has(record.name)) this.sorted = undefined;
    this.records.set(record.name, record);
  }

  delete(name: string): void {
    this.records.delete(name);
    this.sorted = undefined;
  }

  names(): string[] {
    return [...this.records.keys()];
  }

  /** The names in List's order. */
  sortedNames(): string[] {
    this.sorted ??= [...this.records.keys()].sort();
    return this.sorted;
  }

  specOf(name: string): VolumeSpec | undefined {
    return this.records.get(name)?.spec;
  }

  values(): IterableIterator<VolumeRecord> {
    return this.records.values();
  }

  /** Every disk a disk volume holds, readable or not: no Create may take one of them. */
  heldDisks(): HeldDisk[] {
    const held = [...this.heldUnreadable];
    for (const { name, disk, fsUuid } of this.records.values())
      if (disk) held.push({ volume: name, disk, fsUuid });
    return held;
  }

  /** Records a change of the volume's metadata (durably) and of its holders. */
  async update(record: VolumeRecord): Promise<void> {
    await this.store.save(record);
    await this.saveHolders(record);
  }

  async saveHolders(record: VolumeRecord): Promise<void> {
    await this.store.saveHolders(record);
    this.records.set(record.name, record);
  }

  /**
   * Records a released holder. Releasing must not depend on the host having space for metadata:
   * if the write fails (host full), the release proceeds in memory and in the kernel, and the next
   * start-up derives the same state from the kernel (an unmounted volume has no holders).
   */
  async releaseHolder(record: VolumeRecord, log: Logger): Promise<void> {
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
}

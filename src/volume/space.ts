import type { Logger } from 'pino';
import { VolumeError } from '../core/errors.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import { type FileSpace, fileSpace, filesystemUsage } from '../system/fsstat.js';
import { SpaceLedger, type SpaceTotals } from './ledger.js';
import type { Registry } from './registry.js';
import { FULL_WARNING_RATIO, FullnessWatch, type SpaceRequest, spaceRefusal } from './space-guard.js';

/**
 * The space loop volumes take on the data root's filesystem: what each volume and its snapshots
 * occupy (measured with a stat, kept in the ledger), and the admission of work that takes more.
 */
export class Space {
  private readonly ledger = new SpaceLedger();
  private readonly fullness = new FullnessWatch();

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly log: Logger,
    /** How far the sizes of loop volumes may exceed the data root's filesystem (see spaceRefusal). */
    private readonly overcommit: number,
  ) {}

  /**
   * Runs `work` once `request` is admitted by the space rule (spaceRefusal, over the ledger),
   * holding its bytes in the ledger until `work` is done (by then what it made is measured), so
   * that concurrent requests cannot both squeeze in. A refusal (no-space) says `refused`, then why with
   * the figures.
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

  totals(): SpaceTotals {
    return this.ledger.totals();
  }

  /** Looks at every image again (a stat each, yielding between batches). */
  async remeasureAll(): Promise<void> {
    for (const [i, record] of [...this.registry.values()].entries()) {
      if (i % 256 === 255) await new Promise((resolve) => setImmediate(resolve));
      this.measure(record);
    }
  }

  /** A removed volume takes no space. */
  forget(name: string): void {
    this.ledger.delete(name);
  }

  /**
   * Stats a loop volume's image once, updating the running space totals. `allocated` is null when
   * the image cannot be read (Get still answers); disk volumes live outside the data root.
   */
  measure(record: VolumeRecord, known?: FileSpace): { allocated: number | null; imageSize?: number } {
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
}

/** A volume image's space, or undefined when it cannot be read (Get still answers). */
function imageSpace(image: string): FileSpace | undefined {
  try {
    return fileSpace(image);
  } catch {
    return undefined;
  }
}

/** What one volume occupies, as last seen. */
export interface VolumeSpace {
  sizeBytes: number;
  /** Bytes its image occupies on the host (a whole disk: its size). */
  allocatedBytes: number;
  /** A sparse image can still grow by its size minus what it occupies. */
  sparse: boolean;
}

/** Totals over every volume on this host. */
export interface SpaceTotals {
  provisionedBytes: number;
  allocatedBytes: number;
  /** How much all sparse images together may still grow. */
  sparseGrowthBytes: number;
}

/** What requests for space are weighed against (see spaceRefusal). */
export interface Booked {
  /** The sizes of all loop volumes and what their snapshots occupy. */
  provisionedBytes: number;
  /** What the sparse images may still grow by: promised, not taken yet. */
  sparseGrowthBytes: number;
  /** Admitted for work under way (a Create, a growth, a copy) and not yet in the figures above. */
  reservedBytes: number;
}

/**
 * Running totals of the space volumes take, updated whenever a request looks at one volume, so
 * that no request has to stat every image on the host. A volume's figures are as fresh as the
 * last request that touched it.
 */
export class SpaceLedger {
  private readonly volumes = new Map<string, VolumeSpace>();
  private readonly sums: SpaceTotals = { provisionedBytes: 0, allocatedBytes: 0, sparseGrowthBytes: 0 };
  private reserved = 0;

  set(name: string, space: VolumeSpace): void {
    this.apply(this.volumes.get(name), -1);
    this.volumes.set(name, space);
    this.apply(space, 1);
  }

  delete(name: string): void {
    this.apply(this.volumes.get(name), -1);
    this.volumes.delete(name);
  }

  totals(): SpaceTotals {
    return { ...this.sums };
  }

  /**
   * Holds `bytes` for admitted work until release(bytes), so that concurrent requests cannot
   * both squeeze into the same room. While the work writes, its bytes count here and in the
   * free space both: briefly strict, never lenient.
   */
  reserve(bytes: number): void {
    this.reserved += bytes;
  }

  release(bytes: number): void {
    this.reserved -= bytes;
  }

  booked(): Booked {
    const { provisionedBytes, sparseGrowthBytes } = this.sums;
    return { provisionedBytes, sparseGrowthBytes, reservedBytes: this.reserved };
  }

  private apply(space: VolumeSpace | undefined, sign: 1 | -1): void {
    if (!space) return;
    this.sums.provisionedBytes += sign * space.sizeBytes;
    this.sums.allocatedBytes += sign * space.allocatedBytes;
    if (space.sparse)
      this.sums.sparseGrowthBytes += sign * Math.max(0, space.sizeBytes - space.allocatedBytes);
  }
}

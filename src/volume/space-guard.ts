import { formatSize } from '../core/size.js';

/** The filesystem holding the data root, as statfs sees it. */
export interface HostSpace {
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
}

/** Share of the data root's filesystem in use past which the log warns (once per crossing). */
export const FULL_WARNING_RATIO = 0.9;

/**
 * Why a new loop volume of `sizeBytes` must be refused, or undefined to admit it. A sparse volume
 * may not bring the sum of all volumes' sizes past `overcommit` times the filesystem's size (its
 * blocks are only promised); a preallocated one must fit in the free space now.
 */
export function spaceRefusal(
  request: { sizeBytes: number; sparse: boolean },
  provisionedBytes: number,
  host: HostSpace,
  overcommit: number,
): string | undefined {
  if (!request.sparse) {
    if (request.sizeBytes <= host.freeBytes) return undefined;
    return `a preallocated ${formatSize(request.sizeBytes)} does not fit in the ${formatSize(host.freeBytes)} free on the data root's filesystem: free space there, or ask for a sparse volume`;
  }
  const limit = overcommit * host.totalBytes;
  if (provisionedBytes + request.sizeBytes <= limit) return undefined;
  return `${formatSize(request.sizeBytes)} more would bring the volumes on the data root's filesystem to ${formatSize(provisionedBytes + request.sizeBytes)}, over the ${formatSize(limit)} allowed (--overcommit ${overcommit} × ${formatSize(host.totalBytes)}): remove volumes, grow the filesystem or raise --overcommit`;
}

/** Says once when the data root's filesystem passes FULL_WARNING_RATIO, and again only after it fell below. */
export class FullnessWatch {
  private warned = false;

  /** True when this reading crosses into "nearly full". */
  crossed(host: HostSpace): boolean {
    const full = host.totalBytes > 0 && host.usedBytes / host.totalBytes >= FULL_WARNING_RATIO;
    const crossed = full && !this.warned;
    this.warned = full;
    return crossed;
  }
}

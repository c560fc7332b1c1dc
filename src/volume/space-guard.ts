import { formatSize } from '../core/size.js';
import type { Booked } from './ledger.js';

/** The filesystem holding the data root, as statfs sees it. */
export interface HostSpace {
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
}

/** Share of the data root's filesystem in use past which the log warns (once per crossing). */
export const FULL_WARNING_RATIO = 0.9;

/**
 * What a request would add to the data root's filesystem: `bytes` more of loop volume size (a
 * Create's size, a clone's or restore's at least its source's, a resize's growth, a snapshot's
 * copy), `written` when those bytes are taken at once (a preallocated image or its growth, a
 * copy) rather than only promised (a sparse image, which fills as it is written).
 */
export interface SpaceRequest {
  bytes: number;
  written: boolean;
  /** Names written bytes in their refusal: "a preallocated 300M", "a copy of 120M". */
  what: string;
  /** What to do about a refusal of the written bytes, besides freeing space. */
  advice?: string;
}

/**
 * The one space rule, for every request that takes room on the data root's filesystem (see
 * SpaceRequest); undefined admits it.
 * 1. Bytes written at once must fit in the free space less what is promised: the sparse images'
 *    growth and the work under way. So a preallocated volume or a copy never takes the room a
 *    sparse volume was promised (with --overcommit above 1 that promise can exceed the free
 *    space, and then nothing is written at once until it shrinks).
 * 2. Every request, promised or written, may not bring the sum of the volumes' sizes (snapshots
 *    at what they occupy, work under way included) past `overcommit` times the filesystem's size.
 */
export function spaceRefusal(
  request: SpaceRequest,
  booked: Booked,
  host: HostSpace,
  overcommit: number,
): string | undefined {
  if (request.written) {
    const promised = booked.sparseGrowthBytes + booked.reservedBytes;
    const room = Math.max(0, host.freeBytes - promised);
    if (request.bytes > room) {
      return `${request.what} does not fit in the ${formatSize(room)} left on the data root's filesystem (${formatSize(host.freeBytes)} free, less ${formatSize(promised)} promised to sparse volumes and work under way): free space there${request.advice ? `, ${request.advice}` : ''}`;
    }
  }
  const limit = overcommit * host.totalBytes;
  const total = booked.provisionedBytes + booked.reservedBytes + request.bytes;
  if (total <= limit) return undefined;
  return `${formatSize(request.bytes)} more would bring the volumes on the data root's filesystem to ${formatSize(total)}, over the ${formatSize(limit)} allowed (--overcommit ${overcommit} × ${formatSize(host.totalBytes)}): remove volumes or snapshots, grow the filesystem or raise --overcommit`;
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

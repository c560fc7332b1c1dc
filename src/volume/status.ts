import type { KernelState } from '../backend/backend.js';
import { holderCount } from '../core/holders.js';
import { formatSize } from '../core/size.js';
import type { VolumeRecord } from '../state/record.js';
import type { filesystemUsage } from '../system/fsstat.js';
import type { SpaceTotals } from './ledger.js';

type Usage = ReturnType<typeof filesystemUsage>;

/** What Get looked at for one volume; volumeStatus turns it into the Status object. */
export interface StatusInput {
  record: VolumeRecord;
  state: KernelState;
  /** What the image occupies (null when it cannot be read, or for a disk volume). */
  allocated: number | null;
  /** The data root's filesystem, for a loop volume. */
  host: Usage | undefined;
  /** The volume's own filesystem, when mounted. */
  usage: Usage | undefined;
  totals: SpaceTotals;
  snapshots: string[];
  /** More fields from the rooms beside the service (backups). */
  extras: Record<string, unknown> | undefined;
  /** With --cluster: the cluster's view of the volume. */
  cluster: Record<string, unknown> | undefined;
}

/** The Status a Get reports (protocol/wire.ts describes it on the wire). Pure. */
export function volumeStatus(input: StatusInput) {
  const { record, state, host, usage, totals } = input;
  const loop = record.spec.backend === 'loop';
  const hostFree = host?.freeBytes ?? null;
  return {
    backend: record.spec.backend,
    ...(record.disk ? { disk: record.disk } : {}),
    size: record.spec.sizeBytes,
    fs: record.spec.fs,
    sparse: record.spec.sparse,
    encrypted: record.encryption !== undefined,
    ...(record.spec.prealloc ? { prealloc: record.spec.prealloc } : {}),
    allocated: input.allocated,
    hostFree,
    ...(loop ? { hostProvisioned: totals.provisionedBytes } : {}),
    ...(loop ? { hostAllocated: totals.allocatedBytes } : {}),
    ...overcommitWarning(totals.sparseGrowthBytes, hostFree),
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
    snapshots: input.snapshots,
    ...input.extras,
    ...(input.cluster ? { cluster: input.cluster } : {}),
  };
}

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

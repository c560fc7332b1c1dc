import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { VolumeError, wrap } from '../core/errors.js';
import { crashPoint } from '../core/faults.js';
import { formatSize } from '../core/size.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import type { Registry } from './registry.js';
import type { Space } from './space.js';

/**
 * Grows a volume to `bytes` (never shrinks: that could lose data), its growth admitted by the space
 * rule first. The caller holds the volume's lock. Repeating a resize completes an interrupted one.
 */
export async function growVolume(
  { store, registry, space }: { store: Store; registry: Registry; space: Space },
  backend: Backend,
  record: VolumeRecord,
  bytes: number,
  log: Logger,
): Promise<void> {
  const { name } = record;
  if (bytes < record.spec.sizeBytes) {
    throw new VolumeError(
      `cannot resize volume ${name} to ${formatSize(bytes)}: it is ${formatSize(record.spec.sizeBytes)} and shrinking could lose data; copy the data to a smaller volume instead`,
      'invalid',
    );
  }
  const resizing = async () => {
    try {
      await backend.grow(store.layout.volume(name), record, bytes);
      await registry.update({ ...record, spec: { ...record.spec, sizeBytes: bytes } });
    } catch (err) {
      throw wrap(err, `cannot resize volume ${name}`, 'running the same resize again completes it');
    }
    crashPoint('resize:recorded');
    space.measure(registry.require(name));
    log.info({ from: record.spec.sizeBytes, to: bytes }, 'volume resized');
  };
  // Completing an interrupted resize (no growth left to record) takes nothing new.
  const growth = bytes - record.spec.sizeBytes;
  if (record.spec.backend !== 'loop' || growth === 0) return resizing();
  const request = {
    bytes: growth,
    written: !record.spec.sparse,
    what: `growing a preallocated volume by ${formatSize(growth)}`,
  };
  await space.withSpace(request, `cannot resize volume ${name} to ${formatSize(bytes)}`, resizing);
}

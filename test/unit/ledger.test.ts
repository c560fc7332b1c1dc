import { describe, expect, it } from 'vitest';
import { SpaceLedger } from '../../src/volume/ledger.js';

describe('SpaceLedger', () => {
  it('keeps running totals as volumes are seen, changed and removed', () => {
    const ledger = new SpaceLedger();
    ledger.set('a', { sizeBytes: 100, allocatedBytes: 10, sparse: true });
    ledger.set('b', { sizeBytes: 50, allocatedBytes: 50, sparse: false });
    expect(ledger.totals()).toEqual({ provisionedBytes: 150, allocatedBytes: 60, sparseGrowthBytes: 90 });
    ledger.set('a', { sizeBytes: 200, allocatedBytes: 30, sparse: true });
    expect(ledger.totals()).toEqual({ provisionedBytes: 250, allocatedBytes: 80, sparseGrowthBytes: 170 });
    ledger.delete('a');
    ledger.delete('missing');
    expect(ledger.totals()).toEqual({ provisionedBytes: 50, allocatedBytes: 50, sparseGrowthBytes: 0 });
  });

  it('never counts negative growth for an image larger than its size (an interrupted resize)', () => {
    const ledger = new SpaceLedger();
    ledger.set('a', { sizeBytes: 100, allocatedBytes: 120, sparse: true });
    expect(ledger.totals().sparseGrowthBytes).toBe(0);
  });

  it('books reservations for work under way beside the measured totals', () => {
    const ledger = new SpaceLedger();
    ledger.set('a', { sizeBytes: 100, allocatedBytes: 10, sparse: true });
    ledger.reserve(40);
    expect(ledger.booked()).toEqual({ provisionedBytes: 100, sparseGrowthBytes: 90, reservedBytes: 40 });
    ledger.release(40);
    expect(ledger.booked().reservedBytes).toBe(0);
    expect(ledger.totals()).toEqual({ provisionedBytes: 100, allocatedBytes: 10, sparseGrowthBytes: 90 });
  });
});

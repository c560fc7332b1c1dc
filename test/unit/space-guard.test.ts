import { describe, expect, it } from 'vitest';
import { FullnessWatch, spaceRefusal } from '../../src/volume/space-guard.js';

const MiB = 1024 * 1024;
const host = { totalBytes: 1000 * MiB, usedBytes: 300 * MiB, freeBytes: 700 * MiB };

describe('spaceRefusal', () => {
  it('admits sparse volumes while the sizes add up to at most overcommit x the filesystem', () => {
    expect(spaceRefusal({ sizeBytes: 400 * MiB, sparse: true }, 600 * MiB, host, 1)).toBeUndefined();
    expect(spaceRefusal({ sizeBytes: 1500 * MiB, sparse: true }, 400 * MiB, host, 2)).toBeUndefined();
  });

  it('refuses a sparse volume past the limit, with the numbers and what to do', () => {
    expect(spaceRefusal({ sizeBytes: 401 * MiB, sparse: true }, 600 * MiB, host, 1)).toBe(
      "401M more would bring the volumes on the data root's filesystem to 1001M, over the 1000M allowed (--overcommit 1 × 1000M): remove volumes, grow the filesystem or raise --overcommit",
    );
  });

  it('admits a preallocated volume only where it fits in the free space, whatever the overcommit', () => {
    expect(spaceRefusal({ sizeBytes: 700 * MiB, sparse: false }, 0, host, 1)).toBeUndefined();
    expect(spaceRefusal({ sizeBytes: 701 * MiB, sparse: false }, 0, host, 100)).toMatch(
      /^a preallocated 701M does not fit in the 700M free on the data root's filesystem/,
    );
  });
});

describe('FullnessWatch', () => {
  it('says once when the filesystem passes 90% used, and again only after it fell below', () => {
    const watch = new FullnessWatch();
    const at = (used: number) => watch.crossed({ totalBytes: 100, usedBytes: used, freeBytes: 100 - used });
    expect([at(50), at(90), at(95), at(80), at(91), at(99)]).toEqual([
      false,
      true,
      false,
      false,
      true,
      false,
    ]);
  });
});

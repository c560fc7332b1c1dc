import { describe, expect, it } from 'vitest';
import { FullnessWatch, spaceRefusal } from '../../src/volume/space-guard.js';

const MiB = 1024 * 1024;
const host = { totalBytes: 1000 * MiB, usedBytes: 300 * MiB, freeBytes: 700 * MiB };

describe('spaceRefusal', () => {
  const booked = (provisioned: number, growth = 0, reserved = 0) => ({
    provisionedBytes: provisioned * MiB,
    sparseGrowthBytes: growth * MiB,
    reservedBytes: reserved * MiB,
  });
  const sparse = (mib: number) => ({ bytes: mib * MiB, written: false, what: `${mib}M` });
  const written = (mib: number) => ({ bytes: mib * MiB, written: true, what: `a preallocated ${mib}M` });

  it('admits sparse volumes while the sizes add up to at most overcommit x the filesystem', () => {
    expect(spaceRefusal(sparse(400), booked(600), host, 1)).toBeUndefined();
    expect(spaceRefusal(sparse(1500), booked(400), host, 2)).toBeUndefined();
  });

  it('refuses a request past the limit, counting work under way, with the numbers and what to do', () => {
    expect(spaceRefusal(sparse(401), booked(600), host, 1)).toBe(
      "401M more would bring the volumes on the data root's filesystem to 1001M, over the 1000M allowed (--overcommit 1 × 1000M): remove volumes or snapshots, grow the filesystem or raise --overcommit",
    );
    expect(spaceRefusal(sparse(300), booked(600, 0, 101), host, 1)).toMatch(
      /^300M more would bring .* to 1001M/,
    );
    expect(spaceRefusal(written(300), booked(600, 0, 101), host, 1)).toMatch(/^300M more would bring/);
  });

  it('admits written bytes only where they fit in the free space less the sparse promise and work under way', () => {
    expect(spaceRefusal(written(700), booked(0), host, 1)).toBeUndefined();
    expect(spaceRefusal(written(500), booked(200, 200), host, 1)).toBeUndefined();
    expect(spaceRefusal(written(701), booked(0), host, 100)).toBe(
      "a preallocated 701M does not fit in the 700M left on the data root's filesystem (700M free, less 0B promised to sparse volumes and work under way): free space there",
    );
    // Sparse volumes promised 500M, of which they took nothing yet: 200M is all that is left.
    expect(
      spaceRefusal({ ...written(201), advice: 'or ask for a sparse volume' }, booked(500, 450, 50), host, 5),
    ).toBe(
      "a preallocated 201M does not fit in the 200M left on the data root's filesystem (700M free, less 500M promised to sparse volumes and work under way): free space there, or ask for a sparse volume",
    );
    // More promised than free: nothing is written at once.
    expect(spaceRefusal(written(1), booked(2000, 900), host, 5)).toMatch(/does not fit in the 0B left/);
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

import { describe, expect, it } from 'vitest';
import { newExt4Identity, renewableSuperblocks, renewSuperblock } from '../../src/system/ext4-identity.js';

/** A filesystem head (2 KiB) whose primary superblock has the given geometry and features. */
function head(o: {
  groups: number;
  compat?: number;
  incompat?: number;
  roCompat?: number;
  backupBgs?: [number, number];
}) {
  const h = Buffer.alloc(2048);
  const sb = h.subarray(1024);
  sb.writeUInt32LE(o.groups * 32768, 0x04); // blocks
  sb.writeUInt32LE(0, 0x14); // first data block
  sb.writeUInt32LE(2, 0x18); // 4 KiB blocks
  sb.writeUInt32LE(32768, 0x20); // blocks per group
  sb.writeUInt16LE(0xef53, 0x38);
  sb.writeUInt32LE(o.compat ?? 0, 0x5c);
  sb.writeUInt32LE(o.incompat ?? 0x2000, 0x60); // csum_seed
  sb.writeUInt32LE(o.roCompat ?? 0x401, 0x64); // sparse_super, metadata_csum
  if (o.backupBgs) {
    sb.writeUInt32LE(o.backupBgs[0], 0x24c);
    sb.writeUInt32LE(o.backupBgs[1], 0x250);
  }
  return h;
}

const group = (g: number) => g * 32768 * 4096;

describe('renewableSuperblocks', () => {
  it('finds the primary and the sparse_super backups (groups 1 and powers of 3, 5, 7)', () => {
    expect(renewableSuperblocks(head({ groups: 50 }))).toEqual([
      1024,
      ...[1, 3, 5, 7, 9, 25, 27, 49].map(group),
    ]);
  });

  it('finds every group without sparse_super, and the two named groups with sparse_super2', () => {
    expect(renewableSuperblocks(head({ groups: 4, roCompat: 0x400 }))).toEqual([
      1024,
      group(1),
      group(2),
      group(3),
    ]);
    expect(renewableSuperblocks(head({ groups: 40, compat: 0x200, backupBgs: [1, 39] }))).toEqual([
      1024,
      group(1),
      group(39),
    ]);
  });

  it('refuses what rewriting superblocks alone cannot renew', () => {
    // Checksums seeded from the UUID (metadata_csum or gdt_csum without csum_seed), meta_bg, no ext4.
    expect(renewableSuperblocks(head({ groups: 8, incompat: 0 }))).toBeUndefined();
    expect(renewableSuperblocks(head({ groups: 8, incompat: 0, roCompat: 0x11 }))).toBeUndefined();
    expect(renewableSuperblocks(head({ groups: 8, incompat: 0x2010 }))).toBeUndefined();
    expect(renewableSuperblocks(Buffer.alloc(2048))).toBeUndefined();
    expect(renewableSuperblocks(Buffer.alloc(100))).toBeUndefined();
    // No checksums at all: the UUID is free to change.
    expect(renewableSuperblocks(head({ groups: 2, incompat: 0, roCompat: 0x1 }))).toEqual([1024, group(1)]);
  });
});

describe('renewSuperblock', () => {
  it('writes a version 4 UUID and a hash seed, and a checksum over them', () => {
    const sb = head({ groups: 1 }).subarray(1024);
    const identity = newExt4Identity();
    expect((identity.uuid[6] as number) >> 4).toBe(4);
    expect((identity.uuid[8] as number) >> 6).toBe(2);
    renewSuperblock(sb, identity);
    expect(sb.subarray(0x68, 0x78)).toEqual(identity.uuid);
    expect(sb.subarray(0xec, 0xfc)).toEqual(identity.hashSeed);
    // The checksum covers the new fields (e2fsck and the kernel check it on real images: spares.test.ts).
    const before = sb.readUInt32LE(0x3fc);
    renewSuperblock(sb, newExt4Identity());
    expect(sb.readUInt32LE(0x3fc)).not.toBe(before);
  });

  it('refuses a buffer that is not an ext4 superblock', () => {
    expect(() => renewSuperblock(Buffer.alloc(1024), newExt4Identity())).toThrow(/not an ext4 superblock/);
  });
});

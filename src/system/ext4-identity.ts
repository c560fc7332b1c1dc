import { randomBytes } from 'node:crypto';
import { EXT4_MAGIC, EXT4_SUPERBLOCK, isExt4 } from './fs-head.js';

/** ext4 superblock fields (offsets inside its 1024 bytes). */
const SB_BYTES = 1024;
const BLOCKS_COUNT_LO = 0x04;
const FIRST_DATA_BLOCK = 0x14;
const LOG_BLOCK_SIZE = 0x18;
const BLOCKS_PER_GROUP = 0x20;
const MAGIC = 0x38;
const FEATURE_COMPAT = 0x5c;
const FEATURE_INCOMPAT = 0x60;
const FEATURE_RO_COMPAT = 0x64;
const UUID = 0x68;
const HASH_SEED = 0xec;
const BACKUP_BGS = 0x24c;
const BLOCKS_COUNT_HI = 0x150;
const CHECKSUM = 0x3fc;

const COMPAT_SPARSE_SUPER2 = 0x200;
const INCOMPAT_META_BG = 0x10;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_CSUM_SEED = 0x2000;
const RO_COMPAT_SPARSE_SUPER = 0x1;
const RO_COMPAT_GDT_CSUM = 0x10;
const RO_COMPAT_METADATA_CSUM = 0x400;

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/** crc32c as ext4 uses it: seeded with ~0, no final inversion. */
function crc32c(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC32C_TABLE[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8);
  return crc >>> 0;
}

const isPowerOf = (n: number, base: number) => {
  let x = base;
  while (x < n) x *= base;
  return x === n;
};

/**
 * Where an ext4 filesystem keeps its superblocks (the primary, then each backup), as byte offsets,
 * read from its primary superblock (`head`: the first 2 KiB). Undefined when its superblocks
 * cannot be given a new identity by rewriting them alone: the UUID seeds other metadata checksums
 * unless the filesystem has metadata_csum_seed (or no checksums at all), and meta_bg places
 * backups where this does not look.
 */
export function renewableSuperblocks(head: Buffer): number[] | undefined {
  if (!isExt4(head)) return undefined;
  const sb = head.subarray(EXT4_SUPERBLOCK, EXT4_SUPERBLOCK + SB_BYTES);
  const compat = sb.readUInt32LE(FEATURE_COMPAT);
  const incompat = sb.readUInt32LE(FEATURE_INCOMPAT);
  const roCompat = sb.readUInt32LE(FEATURE_RO_COMPAT);
  const checksummed = (roCompat & (RO_COMPAT_METADATA_CSUM | RO_COMPAT_GDT_CSUM)) !== 0;
  if (checksummed && !(incompat & INCOMPAT_CSUM_SEED)) return undefined;
  if (incompat & INCOMPAT_META_BG) return undefined;
  const blockSize = 1024 << sb.readUInt32LE(LOG_BLOCK_SIZE);
  const blocks =
    sb.readUInt32LE(BLOCKS_COUNT_LO) +
    (incompat & INCOMPAT_64BIT ? sb.readUInt32LE(BLOCKS_COUNT_HI) * 2 ** 32 : 0);
  const firstDataBlock = sb.readUInt32LE(FIRST_DATA_BLOCK);
  const perGroup = sb.readUInt32LE(BLOCKS_PER_GROUP);
  const groups = Math.ceil((blocks - firstDataBlock) / perGroup);
  let backups: number[];
  if (compat & COMPAT_SPARSE_SUPER2) {
    backups = [sb.readUInt32LE(BACKUP_BGS), sb.readUInt32LE(BACKUP_BGS + 4)].filter(
      (g) => g > 0 && g < groups,
    );
  } else {
    const sparse = (roCompat & RO_COMPAT_SPARSE_SUPER) !== 0;
    backups = [];
    for (let g = 1; g < groups; g++) {
      if (!sparse || g === 1 || isPowerOf(g, 3) || isPowerOf(g, 5) || isPowerOf(g, 7)) backups.push(g);
    }
  }
  // A backup sits at the start of its group's first block (with 1 KiB blocks, that is block 1 + ...).
  return [EXT4_SUPERBLOCK, ...backups.map((g) => (firstDataBlock + g * perGroup) * blockSize)];
}

/** A new filesystem identity: a random (version 4) UUID and a directory hash seed. */
export interface Ext4Identity {
  uuid: Buffer;
  hashSeed: Buffer;
}

export function newExt4Identity(): Ext4Identity {
  const uuid = randomBytes(16);
  uuid[6] = ((uuid[6] as number) & 0x0f) | 0x40;
  uuid[8] = ((uuid[8] as number) & 0x3f) | 0x80;
  return { uuid, hashSeed: randomBytes(16) };
}

/**
 * Writes `identity` into one superblock (1024 bytes, changed in place) and recomputes its
 * checksum. The caller has checked renewableSuperblocks: nothing else depends on the UUID.
 */
export function renewSuperblock(sb: Buffer, identity: Ext4Identity): void {
  if (sb.length !== SB_BYTES || sb.readUInt16LE(MAGIC) !== EXT4_MAGIC) {
    throw new Error('not an ext4 superblock: the template image is damaged');
  }
  identity.uuid.copy(sb, UUID);
  identity.hashSeed.copy(sb, HASH_SEED);
  if (sb.readUInt32LE(FEATURE_RO_COMPAT) & RO_COMPAT_METADATA_CSUM) {
    sb.writeUInt32LE(crc32c(sb.subarray(0, CHECKSUM)), CHECKSUM);
  }
}

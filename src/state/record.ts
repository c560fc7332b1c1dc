import { z } from 'zod';
import type { Holders } from '../core/holders.js';
import { MOUNT_OPTIONS, type VolumeEncryption, type VolumeSpec } from '../core/options.js';
import { FS_UUID } from './disk-claim.js';

export type { VolumeEncryption } from '../core/options.js';

/** What volume.json holds. Versioned so a later loopvol can migrate it. */
export interface VolumeRecord {
  version: 1;
  name: string;
  /** RFC 3339, stored at Create so Get reports the creation time, not the file's mtime. */
  createdAt: string;
  spec: VolumeSpec;
  /**
   * The pool disk a `disk` volume owns exclusively: its stable name under /dev/disk/by-id (older
   * records hold the kernel name, such as /dev/sdb, until start-up upgrades them).
   */
  disk?: string;
  /** The UUID of the filesystem on that disk: Mount and Remove check it before touching the disk. */
  fsUuid?: string;
  /** The root is prepared (lost+found removed, owner and mode set): at the first Mount, or already at
   * Create when the volume came from a spare and asks for its default owner and mode. */
  initialized: boolean;
  /** An encrypted volume's key (see VolumeEncryption); absent: not encrypted. */
  encryption?: VolumeEncryption;
  /** Kept in holders.json beside volume.json; volume.json files of loopvol 0.1 carry them inline. */
  holders: Holders;
}

// Compiled (z.compile): start-up parses every volume's files, and the generated fast path takes a
// half the time of zod's interpreter or less. Input it rejects goes to the interpreter,
// so errors read as before.
const holdersSchema = z.compile(z.record(z.string(), z.number().int().positive()));

/** A key UUID and the kernel's identifier of the key (32 hex digits). */
export const encryptionSchema = z.object({
  keyUuid: z.string().uuid(),
  keyId: z.string().regex(/^[0-9a-f]{32}$/),
});

const recordSchema = z.compile(
  z.object({
    version: z.literal(1),
    name: z.string(),
    createdAt: z.string(),
    spec: z.object({
      backend: z.enum(['loop', 'disk']),
      sizeBytes: z.number().int().positive(),
      fs: z.enum(['ext4', 'xfs']),
      sparse: z.boolean(),
      prealloc: z.literal('zero').optional(),
      uid: z.number().int().nonnegative(),
      gid: z.number().int().nonnegative(),
      mode: z.number().int().nonnegative(),
      // Volumes of loopvol 0.1 have none.
      mountOptions: z.array(z.enum(MOUNT_OPTIONS)).default([]),
      from: z
        .union([
          z.object({ volume: z.string(), snapshot: z.string().optional() }),
          z.object({ backup: z.string() }),
        ])
        .optional(),
      backupEverySeconds: z.number().int().positive().optional(),
      verifyEverySeconds: z.number().int().positive().optional(),
      fresh: z.boolean().optional(),
      // Volumes made before restore-other have none.
      restoreOther: z.boolean().default(false),
      // Volumes made before encryption have none.
      encrypt: z.boolean().default(false),
    }),
    disk: z.string().optional(),
    fsUuid: z.string().regex(FS_UUID).optional(),
    encryption: encryptionSchema.optional(),
    initialized: z.boolean(),
    holders: holdersSchema.default({}),
  }),
);

/** Parses volume.json; a file that does not match is reported, never half-trusted. */
export function parseRecord(text: string): VolumeRecord {
  return recordSchema.parse(JSON.parse(text));
}

/** volume.json: everything but the holders, which change on every Mount and live apart. */
export function serializeRecord(record: VolumeRecord): string {
  const { holders: _, ...rest } = record;
  return `${JSON.stringify(rest, null, 2)}\n`;
}

export function parseHolders(text: string): Holders {
  return holdersSchema.parse(JSON.parse(text));
}

export function serializeHolders(holders: Holders): string {
  return `${JSON.stringify(holders)}\n`;
}

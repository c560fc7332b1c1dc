import { z } from 'zod';
import type { Holders } from '../core/holders.js';
import type { VolumeSpec } from '../core/options.js';

/** What volume.json holds. Versioned so a later loopvol can migrate it. */
export interface VolumeRecord {
  version: 1;
  name: string;
  /** RFC 3339, stored at Create so Get reports the creation time, not the file's mtime. */
  createdAt: string;
  spec: VolumeSpec;
  /** The pool disk a `disk` volume owns exclusively. */
  disk?: string;
  /** The root directory was prepared (lost+found removed, owner and mode set) on first mount. */
  initialized: boolean;
  holders: Holders;
}

const recordSchema = z.object({
  version: z.literal(1),
  name: z.string(),
  createdAt: z.string(),
  spec: z.object({
    backend: z.enum(['loop', 'disk']),
    sizeBytes: z.number().int().positive(),
    fs: z.enum(['ext4', 'xfs']),
    sparse: z.boolean(),
    uid: z.number().int().nonnegative(),
    gid: z.number().int().nonnegative(),
    mode: z.number().int().nonnegative(),
  }),
  disk: z.string().optional(),
  initialized: z.boolean(),
  holders: z.record(z.string(), z.number().int().positive()),
});

/** Parses volume.json; a file that does not match is reported, never half-trusted. */
export function parseRecord(text: string): VolumeRecord {
  return recordSchema.parse(JSON.parse(text));
}

export function serializeRecord(record: VolumeRecord): string {
  return `${JSON.stringify(record, null, 2)}\n`;
}

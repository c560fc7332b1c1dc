import { z } from 'zod';
import type { FsType } from '../system/mount.js';
import { formatSize, parseSize } from './size.js';

/** What a Create request asks for once its options are parsed and defaults applied. */
export interface VolumeSpec {
  /** `loop`: an image file on the data root; `disk`: a whole disk from the operator's pool. */
  backend: 'loop' | 'disk';
  /** The image size; for a disk volume, the smallest disk accepted (0: any) until one is picked. */
  sizeBytes: number;
  fs: FsType;
  sparse: boolean;
  /** Owner and mode of the volume's root directory, applied when it is first mounted. */
  uid: number;
  gid: number;
  mode: number;
}

/** Defaults taken from the daemon's configuration. */
export interface SpecDefaults {
  sizeBytes: number;
  fs: FsType;
}

/** Smallest filesystem each mkfs accepts (mkfs.xfs refuses below 300 MiB). */
export const MIN_SIZE_BYTES: Record<FsType, number> = { ext4: 16 * 1024 * 1024, xfs: 300 * 1024 * 1024 };

export const ACCEPTED_OPTIONS = ['size', 'fs', 'sparse', 'uid', 'gid', 'mode', 'backend'] as const;

const id = (what: string) =>
  z
    .string()
    .regex(/^\d{1,10}$/, `${what} must be a number from 0 to 4294967294`)
    .transform(Number)
    .refine((n) => n <= 4294967294, `${what} must be a number from 0 to 4294967294`);

const optionsSchema = z.strictObject(
  {
    size: z.string().optional(),
    backend: z.enum(['loop', 'disk'], { error: 'backend must be loop or disk' }).optional(),
    fs: z.enum(['ext4', 'xfs'], { error: 'fs must be ext4 or xfs' }).optional(),
    sparse: z.enum(['true', 'false'], { error: 'sparse must be true or false' }).optional(),
    uid: id('uid').optional(),
    gid: id('gid').optional(),
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'mode must be octal, like 0755 or 2770')
      .transform((s) => Number.parseInt(s, 8))
      .optional(),
  },
  { error: (issue) => unknownOptionMessage(issue) },
);

function unknownOptionMessage(issue: { code?: string; keys?: string[] }): string | undefined {
  if (issue.code !== 'unrecognized_keys') return undefined;
  const keys = (issue.keys ?? []).map((k) => `"${k}"`).join(', ');
  return `unknown option ${keys}: accepted options are ${ACCEPTED_OPTIONS.join(', ')}`;
}

/**
 * Validates Create's `Opts` (untrusted, any JSON) and fills in defaults.
 * Returns an operator-facing error message on failure.
 */
export function parseVolumeSpec(opts: unknown, defaults: SpecDefaults): VolumeSpec | { error: string } {
  if (opts !== null && opts !== undefined && (typeof opts !== 'object' || Array.isArray(opts))) {
    return { error: 'Opts must be an object of string options' };
  }
  const parsed = optionsSchema.safeParse(opts ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `option ${issue.path.join('.')}: ` : '';
    const message = issue?.message ?? 'invalid options';
    return {
      error: issue?.code === 'invalid_type' ? `${where}value must be a string` : `${where}${message}`,
    };
  }
  const o = parsed.data;
  const fs = o.fs ?? defaults.fs;
  const backend = o.backend ?? 'loop';
  let sizeBytes = backend === 'disk' ? 0 : defaults.sizeBytes;
  if (o.size !== undefined) {
    const size = parseSize(o.size);
    if ('error' in size) return { error: size.error };
    sizeBytes = size.bytes;
  }
  if (backend === 'loop' && sizeBytes < MIN_SIZE_BYTES[fs]) {
    return {
      error: `size ${formatSize(sizeBytes)} is below the minimum of ${formatSize(MIN_SIZE_BYTES[fs])} for ${fs}: ask for more`,
    };
  }
  return {
    backend,
    sizeBytes,
    fs,
    sparse: o.sparse !== 'false',
    uid: o.uid ?? 0,
    gid: o.gid ?? 0,
    mode: o.mode ?? 0o755,
  };
}

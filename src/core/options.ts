import { z } from 'zod';
import { parseDuration } from './duration.js';
import type { FsType } from './fs-type.js';
import { type OptionPolicy, optionRefusal } from './option-policy.js';
import { formatSize, parseSize } from './size.js';

/** What a Create request asks for once its options are parsed and defaults applied. */
export interface VolumeSpec {
  /** `loop`: an image file on the data root; `disk`: a whole disk from the operator's pool. */
  backend: 'loop' | 'disk';
  /** The image size; for a disk volume, the smallest disk accepted (0: any) until one is picked. */
  sizeBytes: number;
  fs: FsType;
  sparse: boolean;
  /**
   * `zero`: the image is written with zeros in full at Create (`-o prealloc=zero`, never sparse),
   * so the host journals no extent conversion under the volume's fsyncs. Absent: fallocate only.
   */
  prealloc?: 'zero';
  /** Owner and mode of the volume's root directory, applied when it is first mounted. */
  uid: number;
  gid: number;
  mode: number;
  /** Allowlisted mount options (MOUNT_OPTIONS), added to the nosuid,nodev every volume gets. */
  mountOptions: MountOption[];
  /** A clone: the volume (or the volume's snapshot) whose data it starts with. */
  from?: CloneSource;
  /** Back the volume up this often (`-o backup=6h`), in seconds. */
  backupEverySeconds?: number;
  /** Restore the latest backup into a scratch image and check it this often (`-o backup-verify=1d`), in seconds. */
  verifyEverySeconds?: number;
  /** With --cluster: create the name empty even where its gone owner left backups (`-o fresh=true`). */
  fresh?: boolean;
  /** `from=backup` may restore the backups of another volume name (privileged: `-o restore-other=true`). */
  restoreOther: boolean;
  /** Encrypted at rest with fscrypt (`-o encrypt=true`, ext4 loop volumes); a clone has its source's. */
  encrypt: boolean;
}

/**
 * How an encrypted volume's key is found again: derived from the master key (--key-file) with
 * `keyUuid`, which clones and restores inherit, so they open with the same key; `keyId` is the
 * identifier the kernel gives that key (never the key itself), checked at each Mount.
 */
export interface VolumeEncryption {
  keyUuid: string;
  keyId: string;
}

/**
 * `-o from=NAME` or `from=NAME@SNAP` (a volume or its snapshot), or `from=backup` or
 * `from=backup:ID` (the latest backup of a volume of the new volume's name, or backup ID).
 */
export type CloneSource = { volume: string; snapshot?: string } | { backup: string };

/** The backup a restore starts from when `from=backup` names none. */
export const LATEST_BACKUP = 'latest';

/** Defaults taken from the daemon's configuration. */
export interface SpecDefaults {
  sizeBytes: number;
  fs: FsType;
  /** The operator's --allow-options / --deny-options; absent: every option but the privileged ones. */
  policy?: OptionPolicy;
  /** --encrypt-default: new volumes (not clones) are encrypted unless they say encrypt=false. */
  encrypt?: boolean;
}

/** Smallest filesystem each mkfs accepts (mkfs.xfs refuses below 300 MiB). */
export const MIN_SIZE_BYTES: Record<FsType, number> = { ext4: 16 * 1024 * 1024, xfs: 300 * 1024 * 1024 };

export const ACCEPTED_OPTIONS = [
  'size',
  'fs',
  'sparse',
  'prealloc',
  'uid',
  'gid',
  'mode',
  'backend',
  'mountopts',
  'from',
  'backup',
  'backup-verify',
  'fresh',
  'restore-other',
  'encrypt',
] as const;

export type AcceptedOption = (typeof ACCEPTED_OPTIONS)[number];

/**
 * REX-Ray's names that mean what a loopvol option means. Marathon apps and dvdcli scripts moving
 * from REX-Ray carry them (Marathon checks `dvdi/newfstype`, `iops`, `volumetype`, `overwritefs`
 * and strips the `dvdi/` prefix), and REX-Ray reads them in any case (`newFsType`). An alias is
 * read, and allowed or denied by the operator, as its option.
 */
export const OPTION_ALIASES: Readonly<Record<string, AcceptedOption>> = { newfstype: 'fs' };

/**
 * REX-Ray's names whose meaning loopvol does not have: refused, saying what to do instead, so an
 * app cannot believe it got what it asked for. `overwritefs=false` asks for what loopvol always
 * does (an existing filesystem is never formatted again), so it is accepted and changes nothing.
 */
const FOREIGN_OPTIONS: Readonly<Record<string, { harmless?: string; refusal: string }>> = {
  volumetype: {
    refusal: 'loopvol has no volume types: remove it (backend=disk gives a volume a whole disk of the pool)',
  },
  iops: { refusal: 'loopvol sets no IOPS limit: remove it' },
  overwritefs: {
    harmless: 'false',
    refusal:
      'loopvol never formats over an existing filesystem: remove it (a new volume always starts with an empty one)',
  },
};

/**
 * Renames aliases to their options and drops harmless foreign options; `givenAs` keeps the name
 * the client used, for messages. Keys loopvol does not know are left for the schema to name.
 */
function readForeignNames(
  opts: Record<string, unknown>,
): { options: Record<string, unknown>; givenAs: Record<string, string> } | { error: string } {
  const options: Record<string, unknown> = {};
  const givenAs: Record<string, string> = {};
  for (const [key, value] of Object.entries(opts)) {
    const foreign = FOREIGN_OPTIONS[key.toLowerCase()];
    if (foreign) {
      if (foreign.harmless !== undefined && value === foreign.harmless) continue;
      return { error: `option ${key} (REX-Ray's): ${foreign.refusal}` };
    }
    const target = OPTION_ALIASES[key.toLowerCase()] ?? key;
    if (target in options && options[target] !== value) {
      return {
        error: `options ${givenAs[target] ?? target} and ${key} both set ${target}, differently: give one`,
      };
    }
    options[target] = value;
    if (target !== key) givenAs[target] = key;
  }
  return { options, givenAs };
}

/** Shortest interval between scheduled backups and checks: each freezes the volume or restores a backup. */
export const MIN_BACKUP_INTERVAL_SECONDS = 60;
const BACKUP_BOUNDS = { minMs: MIN_BACKUP_INTERVAL_SECONDS * 1000, maxMs: 366 * 86_400_000 };

/** An interval option such as `backup=6h` (see parseDuration), in seconds. */
const interval = (key: string) =>
  z
    .string()
    .transform((s, ctx) => {
      const every = parseDuration(key, s, BACKUP_BOUNDS);
      if ('ms' in every) return Math.round(every.ms / 1000);
      ctx.addIssue({ code: 'custom', message: every.error });
      return z.NEVER;
    })
    .optional();

/**
 * Mount options a Create may ask for (`-o mountopts=noatime,lazytime`). Anything else could weaken
 * what the host relies on (exec of setuid files, devices) or break the plugin's own handling, so
 * it is refused; nosuid and nodev are always added.
 */
export const MOUNT_OPTIONS = [
  'noatime',
  'nodiratime',
  'relatime',
  'lazytime',
  'discard',
  'nodiscard',
  'data=ordered',
  'data=journal',
  'ro',
] as const;
export type MountOption = (typeof MOUNT_OPTIONS)[number];

/** Options only ext4 understands. */
const EXT4_ONLY: readonly MountOption[] = ['data=ordered', 'data=journal'];

function parseMountOptions(list: string, fs: FsType): MountOption[] | { error: string } {
  const asked = [
    ...new Set(
      list
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    ),
  ];
  const refused = asked.filter((o) => !(MOUNT_OPTIONS as readonly string[]).includes(o));
  if (refused.length > 0) {
    return {
      error: `mount option ${refused.map((o) => `"${o}"`).join(', ')} is not allowed: mountopts accepts ${MOUNT_OPTIONS.join(', ')} (nosuid and nodev are always set)`,
    };
  }
  const options = asked as MountOption[];
  const ext4Only = options.filter((o) => EXT4_ONLY.includes(o));
  if (fs !== 'ext4' && ext4Only.length > 0) return { error: `mount option ${ext4Only[0]} is for ext4 only` };
  return options;
}

const isOption = (key: string) => (ACCEPTED_OPTIONS as readonly string[]).includes(key);

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
    prealloc: z.enum(['zero'], { error: 'prealloc must be zero' }).optional(),
    uid: id('uid').optional(),
    gid: id('gid').optional(),
    mode: z
      .string()
      .regex(/^0?[0-7]{3,4}$/, 'mode must be octal, like 0755 or 2770')
      .transform((s) => Number.parseInt(s, 8))
      .optional(),
    mountopts: z.string().max(256, 'mountopts is too long').optional(),
    from: z
      .string()
      .regex(
        /^(backup(:[0-9a-f]{8,64})?|[A-Za-z0-9][A-Za-z0-9_.-]{1,254}(@[A-Za-z0-9][A-Za-z0-9_.-]{1,254})?)$/,
        'from takes a volume name, VOLUME@SNAPSHOT, backup (the latest) or backup:ID',
      )
      .optional(),
    fresh: z.enum(['true', 'false'], { error: 'fresh must be true or false' }).optional(),
    backup: interval('backup'),
    'backup-verify': interval('backup-verify'),
    'restore-other': z.enum(['true', 'false'], { error: 'restore-other must be true or false' }).optional(),
    encrypt: z.enum(['true', 'false'], { error: 'encrypt must be true or false' }).optional(),
  },
  { error: (issue) => unknownOptionMessage(issue) },
);

function unknownOptionMessage(issue: { code?: string; keys?: string[] }): string | undefined {
  if (issue.code !== 'unrecognized_keys') return undefined;
  const keys = (issue.keys ?? []).map((k) => `"${k}"`).join(', ');
  return `unknown option ${keys}: accepted options are ${ACCEPTED_OPTIONS.join(', ')}`;
}

function parseFrom(from: string): CloneSource {
  if (from === 'backup' || from.startsWith('backup:')) return { backup: from.split(':')[1] ?? LATEST_BACKUP };
  const [volume = '', snapshot] = from.split('@');
  return { volume, ...(snapshot ? { snapshot } : {}) };
}

/**
 * prealloc=zero is for a new ext4 image: a clone's copy is sparse, a disk has no image, and
 * mkfs.xfs zeroes its log with fallocate (unwritten extents again).
 */
function preallocRefusal(
  sparse: string | undefined,
  backend: VolumeSpec['backend'],
  fs: FsType,
  from: CloneSource | undefined,
): string | undefined {
  if (sparse === 'true') return 'prealloc=zero writes the whole image: drop sparse=true';
  if (backend !== 'loop') return 'prealloc=zero is for loop volumes: a disk volume has no image';
  if (fs !== 'ext4') return 'prealloc=zero is for ext4 volumes: use sparse=false for xfs';
  if (from) return 'prealloc=zero is for new volumes: a clone is copied sparse (add sparse=false instead)';
  return undefined;
}

/**
 * Validates Create's `Opts` (untrusted, any JSON) and fills in defaults.
 * Returns an operator-facing error message on failure.
 */
export function parseVolumeSpec(opts: unknown, defaults: SpecDefaults): VolumeSpec | { error: string } {
  if (opts !== null && opts !== undefined && (typeof opts !== 'object' || Array.isArray(opts))) {
    return { error: 'Opts must be an object of string options' };
  }
  const read = readForeignNames((opts ?? {}) as Record<string, unknown>);
  if ('error' in read) return read;
  const { options, givenAs } = read;
  // The operator's word comes first: a denied option is refused whatever its value.
  for (const key of Object.keys(options).filter((k) => isOption(k))) {
    const refusal = optionRefusal(defaults.policy, key, givenAs[key]);
    if (refusal) return { error: refusal };
  }
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join('.') ?? '';
    const named = givenAs[key] ? `${givenAs[key]} (loopvol's ${key})` : key;
    const where = key !== '' ? `option ${named}: ` : '';
    const message = issue?.message ?? 'invalid options';
    return {
      error: issue?.code === 'invalid_type' ? `${where}value must be a string` : `${where}${message}`,
    };
  }
  const o = parsed.data;
  const fs = o.fs ?? defaults.fs;
  const backend = o.backend ?? 'loop';
  const from = o.from ? parseFrom(o.from) : undefined;
  if (from && (backend !== 'loop' || o.fs !== undefined)) {
    return {
      error: "a clone (from=) is a loop volume with its source's filesystem: drop the backend and fs options",
    };
  }
  if (o.prealloc) {
    const refusal = preallocRefusal(o.sparse, backend, fs, from);
    if (refusal) return { error: refusal };
  }
  // A clone is as large as its source unless it asks for more (0: the source's size).
  let sizeBytes = backend === 'disk' || from ? 0 : defaults.sizeBytes;
  if (o.size !== undefined) {
    const size = parseSize(o.size);
    if ('error' in size) return { error: size.error };
    sizeBytes = size.bytes;
  }
  const encrypt = encryptionOf(o.encrypt, { fs, backend, from }, defaults.encrypt);
  if (typeof encrypt === 'object') return encrypt;
  const mountOptions = parseMountOptions(o.mountopts ?? '', fs);
  if ('error' in mountOptions) return mountOptions;
  if (backend === 'loop' && sizeBytes < MIN_SIZE_BYTES[fs] && !(from && sizeBytes === 0)) {
    return {
      error: `size ${formatSize(sizeBytes)} is below the minimum of ${formatSize(MIN_SIZE_BYTES[fs])} for ${fs}: ask for more`,
    };
  }
  return {
    backend,
    sizeBytes,
    fs,
    sparse: o.sparse !== 'false' && !o.prealloc,
    ...(o.prealloc ? { prealloc: o.prealloc } : {}),
    uid: o.uid ?? 0,
    gid: o.gid ?? 0,
    mode: o.mode ?? 0o755,
    mountOptions,
    ...(from ? { from } : {}),
    ...(o.backup ? { backupEverySeconds: o.backup } : {}),
    ...(o['backup-verify'] ? { verifyEverySeconds: o['backup-verify'] } : {}),
    ...(o.fresh === 'true' ? { fresh: true } : {}),
    restoreOther: o['restore-other'] === 'true',
    encrypt,
  };
}

/**
 * Whether a new volume is encrypted: asked (`encrypt=`) or the daemon's default; never for a
 * clone, whose encryption is its source's (the provisioner takes it over). Encryption is fscrypt
 * on ext4 loop volumes.
 */
function encryptionOf(
  asked: 'true' | 'false' | undefined,
  volume: { fs: FsType; backend: VolumeSpec['backend']; from: CloneSource | undefined },
  byDefault = false,
): boolean | { error: string } {
  if (volume.from) {
    return asked === undefined
      ? false
      : { error: 'a clone (from=) is encrypted exactly when its source is: drop the encrypt option' };
  }
  if (asked === 'false' || (asked === undefined && !byDefault)) return false;
  const why =
    asked === undefined ? ' (the daemon encrypts by default: add -o encrypt=false to have none)' : '';
  if (volume.fs !== 'ext4') return { error: `encryption is for ext4 only (fscrypt), not ${volume.fs}${why}` };
  if (volume.backend !== 'loop')
    return { error: `encryption is for loop volumes only, not backend=disk${why}` };
  return true;
}

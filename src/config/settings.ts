import { z } from 'zod';
import { LOG_FORMATS } from '../server/logger.js';
import {
  absolutePath,
  directory,
  duration,
  listenAddress,
  onOff,
  optionList,
  size,
  wholeNumber,
  zookeeperUrl,
} from './values.js';

/**
 * One daemon setting: everything the command line, the environment, the usage text and the
 * validation need to know of it. `loopvol serve`'s parser, its help and resolveConfig are derived
 * from SETTINGS, so a new setting is one entry there (and its field in Config).
 */
export interface Setting<S extends z.ZodType<unknown, string> = z.ZodType<unknown, string>> {
  /** The command-line flag, without its dashes. */
  flag: string;
  /** The environment variable read when the flag is absent. */
  env: string;
  /** The value when neither flag nor environment gives one, written as an operator would. */
  default: string;
  /** What the usage text says of the default when the raw value would say nothing (""). */
  defaultText?: string;
  /** A valid value other than the default: shown in the usage text, and set by the tests. */
  example: string;
  /** What the value is in the usage text (PATH, SIZE, TIME); absent: a switch, given without a value. */
  placeholder?: string;
  /** The usage text's description. */
  help: string;
  /** What a bare number means (the usage text shows it): `--default-size 512` is 512 GiB. */
  unit?: string;
  /**
   * The keys of settings this one means nothing without: giving it (other than as its default)
   * without them is refused. (Plain strings: SettingKey derives from this table.)
   */
  requires?: readonly string[];
  /** Parses the raw string; its messages name the flag (given as "--flag"). */
  schema: (flag: string, env: string) => S;
}

/** Keeps each entry's schema type, so resolveConfig's parsed values are typed field by field. */
const setting = <S extends z.ZodType<unknown, string>>(s: Setting<S>): Setting<S> => s;

const HOUR_MS = 3_600_000;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The daemon's settings, in the order the usage text lists them. */
export const SETTINGS = {
  config: setting({
    flag: 'config',
    env: 'LOOPVOL_CONFIG',
    default: '',
    example: '/etc/loopvol/config.json',
    defaultText: 'none',
    placeholder: 'FILE',
    help:
      'a JSON object of settings keyed by flag name ({"data-root": "/srv/loopvol"}); ' +
      'flags and environment variables win over it',
    schema: (flag) => z.union([z.literal(''), absolutePath(flag)]),
  }),
  socket: setting({
    flag: 'socket',
    env: 'LOOPVOL_SOCKET',
    default: '/run/docker/plugins/loopvol.sock',
    example: '/run/loopvol/plugin.sock',
    placeholder: 'PATH',
    help: 'Unix socket to serve',
    schema: absolutePath,
  }),
  dataRoot: setting({
    flag: 'data-root',
    env: 'LOOPVOL_DATA_ROOT',
    default: '/var/lib/loopvol',
    example: '/srv/loopvol',
    placeholder: 'DIR',
    help: 'where images, metadata and mountpoints live',
    schema: (flag) => directory(flag),
  }),
  mountRoot: setting({
    flag: 'mount-root',
    env: 'LOOPVOL_MOUNT_ROOT',
    default: '',
    example: '/mnt/loopvol',
    defaultText: "inside each volume's directory",
    placeholder: 'DIR',
    help: "mount volumes at DIR/<name> instead (the managed plugin's propagated mount)",
    schema: (flag) => directory(flag, true),
  }),
  defaultSize: setting({
    flag: 'default-size',
    env: 'LOOPVOL_DEFAULT_SIZE',
    default: '1G',
    example: '10G',
    placeholder: 'SIZE',
    help: 'size when Create names none',
    unit: 'GiB',
    schema: size,
  }),
  defaultFs: setting({
    flag: 'default-fs',
    env: 'LOOPVOL_DEFAULT_FS',
    default: 'ext4',
    example: 'xfs',
    placeholder: 'FS',
    help: 'filesystem when Create names none: ext4 or xfs',
    schema: (flag) => z.enum(['ext4', 'xfs'], { error: `${flag} must be ext4 or xfs` }),
  }),
  logLevel: setting({
    flag: 'log-level',
    env: 'LOOPVOL_LOG_LEVEL',
    default: 'info',
    example: 'debug',
    placeholder: 'LEVEL',
    help: LOG_LEVELS.join('|'),
    schema: (flag) => z.enum(LOG_LEVELS, { error: `${flag} must be one of ${LOG_LEVELS.join(', ')}` }),
  }),
  logFormat: setting({
    flag: 'log-format',
    env: 'LOOPVOL_LOG_FORMAT',
    default: '',
    defaultText: 'pretty on a terminal, else json',
    example: 'pretty',
    placeholder: 'FORMAT',
    help: 'json: one JSON object a line (for journald and log shippers); pretty: one short line for a human',
    schema: (flag) => z.enum(['', ...LOG_FORMATS], { error: `${flag} must be ${LOG_FORMATS.join(' or ')}` }),
  }),
  diskPool: setting({
    flag: 'disk-pool',
    env: 'LOOPVOL_DISK_POOL',
    default: '',
    example: '/dev/disk/by-id/ata-A_1,/dev/disk/by-id/ata-B_2',
    defaultText: 'none',
    placeholder: 'DEVS',
    help: 'whole disks for -o backend=disk volumes, comma-separated /dev/disk/by-id/ names',
    schema: (flag) =>
      z
        .string()
        .transform((s) =>
          s
            .split(',')
            .map((d) => d.trim())
            .filter(Boolean),
        )
        .pipe(
          z.array(
            z
              .string()
              .regex(
                /^\/dev\/[A-Za-z0-9_.:@+/-]+$/,
                `${flag} takes device paths under /dev, comma-separated: name each disk by its /dev/disk/by-id/ link`,
              )
              .refine((d) => !d.split('/').includes('..'), `${flag} paths must not contain ..`),
          ),
        )
        .refine((ds) => new Set(ds).size === ds.length, `${flag} names a device twice`),
  }),
  spares: setting({
    flag: 'spares',
    env: 'LOOPVOL_SPARES',
    default: '2',
    example: '4',
    placeholder: 'N',
    help:
      'sparse images kept formatted ahead per recently created size (ext4: also a template per size), ' +
      'so Create skips mkfs; 0 to 16, 0 turns it off',
    schema: (flag) => wholeNumber(`${flag} takes a whole number from 0 to 16`, 16),
  }),
  overcommit: setting({
    flag: 'overcommit',
    env: 'LOOPVOL_OVERCOMMIT',
    default: '1.0',
    example: '2.5',
    placeholder: 'RATIO',
    help:
      "loop volumes' sizes may add up to RATIO x the data root filesystem's size; what is written at " +
      'once (a preallocated volume, a copy) must fit in its free space less what sparse volumes were promised',
    schema: (flag) =>
      z
        .string()
        .regex(/^\d{1,4}(\.\d{1,3})?$/, `${flag} takes a ratio such as 1.0 or 2.5`)
        .transform(Number)
        .refine((n) => n > 0 && n <= 1000, `${flag} must be above 0 and at most 1000`),
  }),
  metricsListen: setting({
    flag: 'metrics-listen',
    env: 'LOOPVOL_METRICS_LISTEN',
    default: '',
    example: '127.0.0.1:9323',
    defaultText: 'off',
    placeholder: 'HOST:PORT',
    help: 'serve Prometheus metrics at http://HOST:PORT/metrics',
    schema: listenAddress,
  }),
  maxFreeze: setting({
    flag: 'max-freeze',
    env: 'LOOPVOL_MAX_FREEZE',
    default: '2s',
    example: '500ms',
    placeholder: 'TIME',
    help:
      'a snapshot of a mounted volume on a data root without reflinks may keep it frozen this long ' +
      'for its copy, else it is refused unless forced',
    unit: 'seconds',
    schema: (flag) => duration(flag, { minMs: 0, maxMs: HOUR_MS }),
  }),
  backupRepo: setting({
    flag: 'backup-repo',
    env: 'LOOPVOL_BACKUP_REPO',
    default: '',
    example: 'sftp:backup@host:/srv/restic',
    defaultText: 'no backups',
    placeholder: 'REPO',
    help:
      "a restic repository (a path, sftp:, s3:, rest:, ...) for loopvol backup and restores; restic's " +
      'own environment passes through for credentials; the operator creates it with restic init',
    requires: ['backupPasswordFile'],
    schema: (flag) => z.string().max(1024, `${flag} is too long`),
  }),
  backupPasswordFile: setting({
    flag: 'backup-password-file',
    env: 'LOOPVOL_BACKUP_PASSWORD_FILE',
    default: '',
    example: '/etc/loopvol/restic-password',
    placeholder: 'FILE',
    help: "the repository's password",
    requires: ['backupRepo'],
    schema: (flag) => z.union([z.literal(''), absolutePath(flag)]),
  }),
  backupKeep: setting({
    flag: 'backup-keep',
    env: 'LOOPVOL_BACKUP_KEEP',
    default: '0',
    example: '7',
    defaultText: '0: all',
    placeholder: 'N',
    help: 'backups kept per volume, older ones pruned',
    requires: ['backupRepo'],
    schema: (flag) => wholeNumber(`${flag} takes a whole number (0 keeps every backup)`, 9999),
  }),
  cluster: setting({
    flag: 'cluster',
    env: 'LOOPVOL_CLUSTER',
    default: '',
    example: 'zk://zk1:2181,zk2:2181/loopvol',
    defaultText: 'a standalone agent',
    placeholder: 'URL',
    help: 'record volume ownership in ZooKeeper',
    schema: zookeeperUrl,
  }),
  clusterTimeout: setting({
    flag: 'cluster-timeout',
    env: 'LOOPVOL_CLUSTER_TIMEOUT',
    default: '10s',
    example: '30s',
    placeholder: 'TIME',
    help: 'ZooKeeper session timeout: how long a gone agent keeps its volumes',
    unit: 'seconds',
    requires: ['cluster'],
    schema: (flag) => duration(flag, { minMs: 1000, maxMs: HOUR_MS }),
  }),
  nodeId: setting({
    flag: 'node-id',
    env: 'LOOPVOL_NODE_ID',
    default: '',
    example: 'agent-1',
    defaultText: 'the host name',
    placeholder: 'ID',
    help: "this agent's name in the cluster",
    requires: ['cluster'],
    schema: (flag) =>
      z
        .string()
        .regex(/^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/, `${flag} takes letters, digits, "_", "." and "-"`),
  }),
  restoreMissing: setting({
    flag: 'restore-missing',
    env: 'LOOPVOL_RESTORE_MISSING',
    default: 'false',
    example: 'true',
    help: 'a Create of a name whose owner is gone restores its latest backup',
    requires: ['cluster', 'backupRepo'],
    schema: (flag, env) => onOff(`${flag} (env ${env}) is true or false`),
  }),
  clusterAuthFile: setting({
    flag: 'cluster-auth-file',
    env: 'LOOPVOL_CLUSTER_AUTH_FILE',
    default: '',
    defaultText: 'open ACLs',
    example: '/etc/loopvol/zk-auth',
    placeholder: 'FILE',
    help: "USER:PASSWORD (mode 0600) for ZooKeeper's digest scheme: loopvol's nodes are that user's only (see docs/mesos.md)",
    requires: ['cluster'],
    schema: (flag) => z.union([z.literal(''), absolutePath(flag)]),
  }),
  allowOptions: setting({
    flag: 'allow-options',
    env: 'LOOPVOL_ALLOW_OPTIONS',
    default: '',
    example: 'default,restore-other',
    defaultText: 'all but the privileged',
    placeholder: 'KEYS',
    help:
      'Create accepts only these options (comma-separated, e.g. size,fs,sparse), privileged ones ' +
      '(restore-other) only when named here; "default" stands for every option but those',
    schema: optionList,
  }),
  keyFile: setting({
    flag: 'key-file',
    env: 'LOOPVOL_KEY_FILE',
    default: '',
    defaultText: 'no encrypted volumes',
    example: '/run/loopvol/master.key',
    placeholder: 'FILE',
    help:
      'the master key (32 to 64 bytes, owned by root, mode 0600 or 0400) from which each encrypted ' +
      "volume's key is derived; keep it on tmpfs or fetch it from a secrets manager (see docs/security.md)",
    schema: (flag) => z.union([z.literal(''), absolutePath(flag)]),
  }),
  encryptDefault: setting({
    flag: 'encrypt-default',
    env: 'LOOPVOL_ENCRYPT_DEFAULT',
    default: 'false',
    example: 'true',
    help: 'new volumes are encrypted unless their Create says -o encrypt=false',
    requires: ['keyFile'],
    schema: (flag, env) => onOff(`${flag} (env ${env}) is true or false`),
  }),
  denyOptions: setting({
    flag: 'deny-options',
    env: 'LOOPVOL_DENY_OPTIONS',
    default: '',
    example: 'backup,from',
    defaultText: 'none',
    placeholder: 'KEYS',
    help: 'Create refuses these options',
    schema: optionList,
  }),
} as const;

export type SettingKey = keyof typeof SETTINGS;

export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** Each setting's default, as an operator would write it. */
export const DEFAULTS = Object.fromEntries(SETTING_KEYS.map((k) => [k, SETTINGS[k].default])) as {
  [K in SettingKey]: (typeof SETTINGS)[K]['default'];
};

/** Each setting's environment variable, read when its flag is absent. */
export const ENV = Object.fromEntries(SETTING_KEYS.map((k) => [k, SETTINGS[k].env])) as {
  [K in SettingKey]: (typeof SETTINGS)[K]['env'];
};

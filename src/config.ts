import { hostname } from 'node:os';
import { z } from 'zod';
import type { ClusterOptions } from './cluster/cluster.js';
import { type DurationBounds, parseDuration } from './core/duration.js';
import { type OptionPolicy, parseOptionList } from './core/option-policy.js';
import { ACCEPTED_OPTIONS } from './core/options.js';
import { isWithin } from './core/paths.js';
import { parseSize } from './core/size.js';
import type { ListenAddress } from './metrics/server.js';

/** Daemon settings after flags, environment and defaults are merged and validated. */
export interface Config {
  socket: string;
  dataRoot: string;
  defaultSizeBytes: number;
  defaultFs: 'ext4' | 'xfs';
  logLevel: string;
  /** Whole disks `-o backend=disk` volumes may own; empty: disk volumes are refused. */
  diskPool: string[];
  /** Where volumes are mounted, as <mountRoot>/<name>; empty: inside each volume's directory. */
  mountRoot: string;
  /** Sparse images kept formatted ahead of time per recently created size; 0: none. */
  spares: number;
  /** The sum of loop volumes' sizes may reach this many times the data root filesystem's size. */
  overcommit: number;
  /** Where to serve Prometheus metrics; absent: not served. */
  metricsListen: ListenAddress | undefined;
  /** Longest a snapshot may keep a mounted volume frozen for a block-by-block copy, in ms. */
  maxFreezeMs: number;
  /** The restic repository volumes are backed up to, and its password file; absent: no backups. */
  backup: { repository: string; passwordFile: string; keep: number } | undefined;
  /** The ZooKeeper ensemble that records volume ownership; absent: a standalone agent. */
  cluster: ClusterOptions | undefined;
  /** The Create options clients may use (--allow-options, --deny-options). */
  optionPolicy: OptionPolicy;
}

export const DEFAULTS = {
  socket: '/run/docker/plugins/loopvol.sock',
  dataRoot: '/var/lib/loopvol',
  defaultSize: '1G',
  defaultFs: 'ext4',
  logLevel: 'info',
  diskPool: '',
  mountRoot: '',
  spares: '2',
  overcommit: '1.0',
  metricsListen: '',
  maxFreeze: '2',
  backupRepo: '',
  backupPasswordFile: '',
  backupKeep: '0',
  cluster: '',
  clusterTimeout: '10',
  nodeId: '',
  restoreMissing: 'false',
  allowOptions: '',
  denyOptions: '',
  clusterAuthFile: '',
} as const;

/** Environment variables read when a flag is absent. */
export const ENV = {
  socket: 'LOOPVOL_SOCKET',
  dataRoot: 'LOOPVOL_DATA_ROOT',
  defaultSize: 'LOOPVOL_DEFAULT_SIZE',
  defaultFs: 'LOOPVOL_DEFAULT_FS',
  logLevel: 'LOOPVOL_LOG_LEVEL',
  diskPool: 'LOOPVOL_DISK_POOL',
  mountRoot: 'LOOPVOL_MOUNT_ROOT',
  spares: 'LOOPVOL_SPARES',
  overcommit: 'LOOPVOL_OVERCOMMIT',
  metricsListen: 'LOOPVOL_METRICS_LISTEN',
  maxFreeze: 'LOOPVOL_MAX_FREEZE',
  backupRepo: 'LOOPVOL_BACKUP_REPO',
  backupPasswordFile: 'LOOPVOL_BACKUP_PASSWORD_FILE',
  backupKeep: 'LOOPVOL_BACKUP_KEEP',
  cluster: 'LOOPVOL_CLUSTER',
  clusterTimeout: 'LOOPVOL_CLUSTER_TIMEOUT',
  nodeId: 'LOOPVOL_NODE_ID',
  restoreMissing: 'LOOPVOL_RESTORE_MISSING',
  allowOptions: 'LOOPVOL_ALLOW_OPTIONS',
  denyOptions: 'LOOPVOL_DENY_OPTIONS',
  clusterAuthFile: 'LOOPVOL_CLUSTER_AUTH_FILE',
} as const;

const absolute = (what: string) =>
  z.string().refine((p) => p.startsWith('/'), `${what} must be an absolute path`);

/** An absolute directory other than /, without trailing slashes; `optional` also accepts "" (unset). */
const directory = (what: string, optional = false) => {
  const unset = (p: string) => optional && p === '';
  return z
    .string()
    .refine((p) => unset(p) || p.startsWith('/'), `${what} must be an absolute path`)
    .refine((p) => unset(p) || !/^\/+$/.test(p), `${what} must not be /`)
    .transform((p) => p.replace(/\/+$/, ''));
};

/** A duration flag (see parseDuration), in milliseconds. */
const duration = (flag: string, bounds: DurationBounds) =>
  z.string().transform((s, ctx) => {
    const parsed = parseDuration(flag, s, bounds);
    if ('ms' in parsed) return parsed.ms;
    ctx.addIssue({ code: 'custom', message: parsed.error });
    return z.NEVER;
  });

const HOUR_MS = 3_600_000;

/** --allow-options / --deny-options: comma-separated Create option keys. */
const optionList = (flag: string) =>
  z.string().transform((s, ctx) => {
    const keys = parseOptionList(flag, s, ACCEPTED_OPTIONS);
    if (Array.isArray(keys)) return keys;
    ctx.addIssue({ code: 'custom', message: keys.error });
    return z.NEVER;
  });

const schema = z
  .object({
    socket: absolute('--socket'),
    dataRoot: directory('--data-root'),
    mountRoot: directory('--mount-root', true),
    defaultSize: z.string().transform((s, ctx) => {
      const size = parseSize(s);
      if ('error' in size) {
        ctx.addIssue({ code: 'custom', message: `--default-size: ${size.error}` });
        return z.NEVER;
      }
      return size.bytes;
    }),
    defaultFs: z.enum(['ext4', 'xfs'], { error: '--default-fs must be ext4 or xfs' }),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: '--log-level must be one of fatal, error, warn, info, debug, trace, silent',
    }),
    diskPool: z
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
              '--disk-pool takes device paths under /dev, comma-separated: name each disk by its /dev/disk/by-id/ link',
            )
            .refine((d) => !d.split('/').includes('..'), '--disk-pool paths must not contain ..'),
        ),
      )
      .refine((ds) => new Set(ds).size === ds.length, '--disk-pool names a device twice'),
    spares: z
      .string()
      .regex(/^\d{1,2}$/, '--spares takes a whole number from 0 to 16')
      .transform(Number)
      .refine((n) => n <= 16, '--spares takes a whole number from 0 to 16'),
    overcommit: z
      .string()
      .regex(/^\d{1,4}(\.\d{1,3})?$/, '--overcommit takes a ratio such as 1.0 or 2.5')
      .transform(Number)
      .refine((n) => n > 0 && n <= 1000, '--overcommit must be above 0 and at most 1000'),
    maxFreeze: duration('--max-freeze', { minMs: 0, maxMs: HOUR_MS }),
    backupRepo: z.string().max(1024, '--backup-repo is too long'),
    backupPasswordFile: z.union([z.literal(''), absolute('--backup-password-file')]),
    clusterAuthFile: z.union([z.literal(''), absolute('--cluster-auth-file')]),
    backupKeep: z
      .string()
      .regex(/^\d{1,4}$/, '--backup-keep takes a whole number (0 keeps every backup)')
      .transform(Number),
    cluster: z
      .string()
      .regex(
        /^(zk:\/\/[A-Za-z0-9.:,[\]-]+(\/[A-Za-z0-9_./-]*)?)?$/,
        '--cluster takes zk://HOST:PORT[,HOST:PORT...]/PATH',
      ),
    clusterTimeout: duration('--cluster-timeout', { minMs: 1000, maxMs: HOUR_MS }),
    nodeId: z
      .string()
      .regex(/^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$/, '--node-id takes letters, digits, "_", "." and "-"'),
    restoreMissing: z.enum(['true', 'false'], {
      error: '--restore-missing (env LOOPVOL_RESTORE_MISSING) is true or false',
    }),
    metricsListen: z.string().transform((s, ctx) => {
      if (s === '') return undefined;
      // HOST:PORT, the host a name, an IPv4 address or a bracketed IPv6 address.
      const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(s);
      const port = Number(m?.[2]);
      if (!m?.[1] || port < 1 || port > 65535) {
        ctx.addIssue({ code: 'custom', message: '--metrics-listen takes HOST:PORT, e.g. 127.0.0.1:9323' });
        return z.NEVER;
      }
      return { host: m[1].replace(/^\[|\]$/g, ''), port };
    }),
    allowOptions: optionList('--allow-options'),
    denyOptions: optionList('--deny-options'),
  })
  .refine((c) => (c.backupRepo === '') === (c.backupPasswordFile === ''), {
    message: '--backup-repo and --backup-password-file go together',
  })
  .refine(
    (c) => c.mountRoot === '' || !(isWithin(c.mountRoot, c.dataRoot) || isWithin(c.dataRoot, c.mountRoot)),
    {
      message: '--mount-root and --data-root must not contain one another',
    },
  );

type Key = keyof typeof DEFAULTS;

/** Merges flag values (undefined when not given), then the environment, then defaults. */
export function resolveConfig(flags: Partial<Record<Key, string>>, env: NodeJS.ProcessEnv): Config {
  const pick = (key: Key) => flags[key] ?? env[ENV[key]] ?? DEFAULTS[key];
  const result = schema.safeParse({
    socket: pick('socket'),
    dataRoot: pick('dataRoot'),
    defaultSize: pick('defaultSize'),
    defaultFs: pick('defaultFs'),
    logLevel: pick('logLevel'),
    diskPool: pick('diskPool'),
    mountRoot: pick('mountRoot'),
    spares: pick('spares'),
    overcommit: pick('overcommit'),
    metricsListen: pick('metricsListen'),
    maxFreeze: pick('maxFreeze'),
    backupRepo: pick('backupRepo'),
    backupPasswordFile: pick('backupPasswordFile'),
    backupKeep: pick('backupKeep'),
    cluster: pick('cluster'),
    clusterTimeout: pick('clusterTimeout'),
    nodeId: pick('nodeId'),
    restoreMissing: pick('restoreMissing'),
    allowOptions: pick('allowOptions'),
    denyOptions: pick('denyOptions'),
    clusterAuthFile: pick('clusterAuthFile'),
  });
  if (!result.success) throw new Error(result.error.issues.map((i) => i.message).join('; '));
  const c = result.data;
  return {
    socket: c.socket,
    dataRoot: c.dataRoot,
    defaultSizeBytes: c.defaultSize,
    defaultFs: c.defaultFs,
    logLevel: c.logLevel,
    diskPool: c.diskPool,
    mountRoot: c.mountRoot,
    spares: c.spares,
    overcommit: c.overcommit,
    metricsListen: c.metricsListen,
    maxFreezeMs: c.maxFreeze,
    backup: c.backupRepo
      ? { repository: c.backupRepo, passwordFile: c.backupPasswordFile, keep: c.backupKeep }
      : undefined,
    cluster: c.cluster
      ? {
          ...clusterOptions(c.cluster, c.clusterTimeout, c.nodeId, c.restoreMissing === 'true'),
          ...(c.clusterAuthFile ? { authFile: c.clusterAuthFile } : {}),
        }
      : undefined,
    optionPolicy: {
      ...(c.allowOptions.length > 0 ? { allowed: c.allowOptions } : {}),
      denied: c.denyOptions,
    },
  };
}

/** zk://HOST:PORT,HOST:PORT/PATH as the ZooKeeper client wants it: hosts, and loopvol's root. */
function clusterOptions(
  url: string,
  timeoutMs: number,
  nodeId: string,
  restoreMissing: boolean,
): ClusterOptions {
  const rest = url.slice('zk://'.length);
  const slash = rest.indexOf('/');
  const connectString = slash === -1 ? rest : rest.slice(0, slash);
  const root = (slash === -1 ? '' : rest.slice(slash)).replace(/\/+$/, '') || '/loopvol';
  return { connectString, root, nodeId: nodeId || hostname(), timeoutMs, restoreMissing };
}

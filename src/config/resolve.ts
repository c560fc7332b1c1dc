import { hostname } from 'node:os';
import { z } from 'zod';
import type { ClusterOptions } from '../cluster/options.js';
import type { OptionPolicy } from '../core/option-policy.js';
import { isWithin } from '../core/paths.js';
import type { ListenAddress } from '../metrics/server.js';
import type { LogFormat } from '../server/logger.js';
import { SETTING_KEYS, SETTINGS, type SettingKey } from './settings.js';

/** Daemon settings after flags, environment and defaults are merged and validated. */
export interface Config {
  /** The JSON file settings were also read from (--config); empty: none. */
  configFile: string;
  socket: string;
  dataRoot: string;
  defaultSizeBytes: number;
  defaultFs: 'ext4' | 'xfs';
  logLevel: string;
  /** How log lines are written; absent: pretty on a terminal, else json. */
  logFormat?: LogFormat;
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
  /** The master key file of encrypted volumes (--key-file); empty: none can be created or mounted. */
  keyFile: string;
  /** New volumes are encrypted unless they say otherwise (--encrypt-default). */
  encryptDefault: boolean;
}

type Settings = typeof SETTINGS;

/** Settings that cannot be used as given; `loopvol serve` exits 2 for it, as for a wrong command line. */
export class ConfigError extends Error {}

/** Every setting's schema, keyed as in SETTINGS, its messages naming its flag. */
const fields = Object.fromEntries(
  SETTING_KEYS.map((k) => [k, SETTINGS[k].schema(`--${SETTINGS[k].flag}`, SETTINGS[k].env)]),
) as { [K in SettingKey]: ReturnType<Settings[K]['schema']> };

/** The rules between settings; each field's own rules are in its SETTINGS entry. */
const schema = z
  .object(fields)
  .refine(
    (c) => c.mountRoot === '' || !(isWithin(c.mountRoot, c.dataRoot) || isWithin(c.dataRoot, c.mountRoot)),
    { message: '--mount-root and --data-root must not contain one another' },
  );

const named = (k: SettingKey) => `--${SETTINGS[k].flag} (env ${SETTINGS[k].env})`;

/**
 * Settings given, other than as their default, without one they need (SETTINGS' `requires`): these
 * would be ignored, so they are refused, naming both.
 */
function missingRequirements(raw: Record<SettingKey, string>): string[] {
  const set = (k: SettingKey) => raw[k] !== SETTINGS[k].default;
  return SETTING_KEYS.flatMap((k) => {
    const missing = ((SETTINGS[k].requires ?? []) as readonly SettingKey[]).filter((r) => !set(r));
    return set(k) && missing.length > 0 ? [`${named(k)} needs ${missing.map(named).join(' and ')}`] : [];
  });
}

/**
 * Merges flag values (undefined when not given), then the environment, then the config file's
 * (readConfigFile), then defaults, validates them and shapes the Config the daemon uses. Every
 * invalid value is reported at once.
 */
export function resolveConfig(
  flags: Partial<Record<SettingKey, string>>,
  env: NodeJS.ProcessEnv,
  file: Partial<Record<SettingKey, string>> = {},
): Config {
  const raw = Object.fromEntries(
    SETTING_KEYS.map((k) => [k, flags[k] ?? env[SETTINGS[k].env] ?? file[k] ?? SETTINGS[k].default]),
  ) as Record<SettingKey, string>;
  const result = schema.safeParse(raw);
  const problems = [...missingRequirements(raw), ...(result.error?.issues.map((i) => i.message) ?? [])];
  if (!result.success || problems.length > 0) throw new ConfigError(problems.join('; '));
  const c = result.data;
  return {
    configFile: c.config,
    socket: c.socket,
    dataRoot: c.dataRoot,
    defaultSizeBytes: c.defaultSize,
    defaultFs: c.defaultFs,
    logLevel: c.logLevel,
    ...(c.logFormat ? { logFormat: c.logFormat } : {}),
    diskPool: c.diskPool,
    mountRoot: c.mountRoot,
    spares: c.spares,
    overcommit: c.overcommit,
    metricsListen: c.metricsListen,
    maxFreezeMs: c.maxFreeze,
    backup: c.backupRepo
      ? { repository: c.backupRepo, passwordFile: c.backupPasswordFile, keep: c.backupKeep }
      : undefined,
    cluster: c.cluster && {
      ...c.cluster,
      nodeId: c.nodeId || hostname(),
      timeoutMs: c.clusterTimeout,
      restoreMissing: c.restoreMissing,
      ...(c.clusterAuthFile ? { authFile: c.clusterAuthFile } : {}),
    },
    optionPolicy: {
      ...(c.allowOptions.length > 0 ? { allowed: c.allowOptions } : {}),
      denied: c.denyOptions,
    },
    keyFile: c.keyFile,
    encryptDefault: c.encryptDefault,
  };
}

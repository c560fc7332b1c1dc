import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envTemplate } from '../../src/config/env-template.js';
import { readConfigFile, settingsFromConfigFile } from '../../src/config/file.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { DEFAULTS, ENV, SETTING_KEYS, SETTINGS } from '../../src/config/settings.js';

const GiB = 1024 ** 3;

describe('resolveConfig', () => {
  it('uses the defaults when neither flags nor environment say anything', () => {
    expect(resolveConfig({}, {})).toMatchObject({
      socket: DEFAULTS.socket,
      dataRoot: DEFAULTS.dataRoot,
      defaultSizeBytes: GiB,
      defaultFs: 'ext4',
      logLevel: 'info',
    });
  });

  it('takes the environment over the defaults', () => {
    const env = {
      [ENV.socket]: '/run/env.sock',
      [ENV.dataRoot]: '/srv/env',
      [ENV.defaultSize]: '2G',
      [ENV.defaultFs]: 'xfs',
      [ENV.logLevel]: 'debug',
    };
    expect(resolveConfig({}, env)).toMatchObject({
      socket: '/run/env.sock',
      dataRoot: '/srv/env',
      defaultSizeBytes: 2 * GiB,
      defaultFs: 'xfs',
      logLevel: 'debug',
    });
  });

  it('takes flags over the environment, field by field', () => {
    const env = { [ENV.socket]: '/run/env.sock', [ENV.defaultFs]: 'xfs', [ENV.defaultSize]: '2G' };
    expect(
      resolveConfig({ socket: '/run/flag.sock', defaultSize: '3G', defaultFs: undefined }, env),
    ).toMatchObject({ socket: '/run/flag.sock', defaultSizeBytes: 3 * GiB, defaultFs: 'xfs' });
  });

  it('drops trailing slashes from the data root', () => {
    expect(resolveConfig({ dataRoot: '/srv/loopvol//' }, {}).dataRoot).toBe('/srv/loopvol');
  });

  it('mounts inside the data root unless a mount root is given, by flag or environment', () => {
    expect(resolveConfig({}, {}).mountRoot).toBe('');
    expect(resolveConfig({}, { [ENV.mountRoot]: '/mnt/loopvol/' }).mountRoot).toBe('/mnt/loopvol');
    expect(resolveConfig({ mountRoot: '/mnt/a' }, { [ENV.mountRoot]: '/mnt/b' }).mountRoot).toBe('/mnt/a');
  });

  it.each([
    [{ socket: 'loopvol.sock' }, '--socket must be an absolute path'],
    [{ dataRoot: 'relative/dir' }, '--data-root must be an absolute path'],
    [{ dataRoot: '/' }, '--data-root must not be /'],
    [{ mountRoot: 'mnt' }, '--mount-root must be an absolute path'],
    [{ mountRoot: '//' }, '--mount-root must not be /'],
    [{ mountRoot: '/var/lib/loopvol/mnt' }, '--mount-root and --data-root must not contain one another'],
    [{ mountRoot: '/var/lib' }, '--mount-root and --data-root must not contain one another'],
    [{ mountRoot: '/var/lib/loopvol' }, '--mount-root and --data-root must not contain one another'],
    [{ defaultSize: 'huge' }, '--default-size: size "huge" is not a size'],
    [{ defaultSize: '0' }, '--default-size: size "0" must be greater than zero'],
    [{ defaultFs: 'btrfs' }, '--default-fs must be ext4 or xfs'],
    [{ logLevel: 'verbose' }, '--log-level must be one of fatal, error, warn, info, debug, trace, silent'],
  ])('rejects %j with a message naming the flag', (flags, message) => {
    expect(() => resolveConfig(flags, {})).toThrow(message);
  });

  it('rejects a bad environment value with the flag it stands for', () => {
    expect(() => resolveConfig({}, { [ENV.defaultFs]: 'zfs' })).toThrow('--default-fs must be ext4 or xfs');
  });

  it('reports every invalid value at once', () => {
    expect(() => resolveConfig({ socket: 'x', defaultFs: 'zfs', logLevel: 'loud' }, {})).toThrow(
      /--socket.*; --default-fs.*; --log-level/,
    );
  });

  it('reads the disk pool as a comma-separated list, empty by default', () => {
    expect(resolveConfig({}, {}).diskPool).toEqual([]);
    expect(resolveConfig({}, { [ENV.diskPool]: '/dev/vdb, /dev/vdc,' }).diskPool).toEqual([
      '/dev/vdb',
      '/dev/vdc',
    ]);
    expect(
      resolveConfig({ diskPool: '/dev/disk/by-id/ata-X_1' }, { [ENV.diskPool]: '/dev/vdb' }).diskPool,
    ).toEqual(['/dev/disk/by-id/ata-X_1']);
  });

  it.each([
    ['vdb', 'device paths under /dev'],
    ['/tmp/disk.img', 'device paths under /dev'],
    ['/dev/../etc/passwd', 'must not contain ..'],
    ['/dev/vdb,/dev/vdb', 'names a device twice'],
  ])('rejects the disk pool %j', (diskPool, message) => {
    expect(() => resolveConfig({ diskPool }, {})).toThrow(message);
  });

  // "//" must not slip past the check and become "" (a data root relative to the working directory).
  it('rejects a data root made only of slashes', () => {
    expect(() => resolveConfig({ dataRoot: '//' }, {})).toThrow('--data-root must not be /');
  });

  it('parses --metrics-listen as HOST:PORT, off by default', () => {
    expect(resolveConfig({}, {}).metricsListen).toBeUndefined();
    expect(resolveConfig({ metricsListen: '127.0.0.1:9323' }, {}).metricsListen).toEqual({
      host: '127.0.0.1',
      port: 9323,
    });
    expect(resolveConfig({}, { [ENV.metricsListen]: '[::1]:9000' }).metricsListen).toEqual({
      host: '::1',
      port: 9000,
    });
    for (const bad of ['9323', '127.0.0.1:0', 'host:70000', 'a b:1', ':9323']) {
      expect(() => resolveConfig({ metricsListen: bad }, {}), bad).toThrow(
        /--metrics-listen takes HOST:PORT/,
      );
    }
  });

  it.each([
    ['10', 10_000],
    ['2s', 2000],
    ['1500ms', 1500],
    ['1m', 60_000],
  ])('reads --cluster-timeout %j with or without a unit (bare: seconds)', (clusterTimeout, ms) => {
    const flags = { cluster: 'zk://127.0.0.1:2181/loopvol', clusterTimeout };
    expect(resolveConfig(flags, {}).cluster?.timeoutMs).toBe(ms);
    expect(
      resolveConfig({ cluster: flags.cluster }, { [ENV.clusterTimeout]: clusterTimeout }).cluster?.timeoutMs,
    ).toBe(ms);
  });

  it.each([
    ['2', 2000],
    ['0.5', 500],
    ['500ms', 500],
    ['1m', 60_000],
  ])('reads --max-freeze %j with or without a unit (bare: seconds)', (maxFreeze, ms) => {
    expect(resolveConfig({ maxFreeze }, {}).maxFreezeMs).toBe(ms);
  });

  it.each([
    [{ clusterTimeout: 'soon' }, '--cluster-timeout takes a duration such as 500ms, 2s, 1m or 1h'],
    [{ clusterTimeout: '500ms' }, '--cluster-timeout must be at least 1s'],
    [{ clusterTimeout: '2h' }, '--cluster-timeout must be at most 1h'],
    [{ maxFreeze: '2 sec' }, '--max-freeze takes a duration such as 500ms, 2s, 1m or 1h'],
  ])('rejects the duration %j, naming the flag', (flags, message) => {
    expect(() => resolveConfig(flags, {})).toThrow(message);
  });

  it('reads --allow-options and --deny-options, by flag or environment', () => {
    expect(resolveConfig({}, {}).optionPolicy).toEqual({ denied: [] });
    expect(
      resolveConfig({ allowOptions: 'size, fs,restore-other', denyOptions: 'fs' }, {}).optionPolicy,
    ).toEqual({
      allowed: ['size', 'fs', 'restore-other'],
      denied: ['fs'],
    });
    expect(
      resolveConfig({}, { [ENV.allowOptions]: 'size', [ENV.denyOptions]: 'backup,from' }).optionPolicy,
    ).toEqual({ allowed: ['size'], denied: ['backup', 'from'] });
  });

  it('refuses option lists naming keys that are no option, naming them', () => {
    expect(() => resolveConfig({ denyOptions: 'backup,restore_other' }, {})).toThrow(
      /^--deny-options names unknown option "restore_other": options are size, fs/,
    );
    expect(() => resolveConfig({}, { [ENV.allowOptions]: 'Size' })).toThrow(
      /--allow-options names unknown option "Size"/,
    );
  });
});

describe('the config file (--config)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopvol-config-file-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `content` (JSON-encoded unless a string) to a new file in `dir` and returns its path. */
  let count = 0;
  async function file(content: unknown): Promise<string> {
    const path = join(dir, `config-${count++}.json`);
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    return path;
  }

  it('reads settings keyed by flag name, numbers and switches written bare', async () => {
    const path = await file({
      'data-root': '/srv/file',
      spares: 4,
      'restore-missing': true,
      'default-size': '2G',
    });
    expect(await readConfigFile(path)).toEqual({
      dataRoot: '/srv/file',
      spares: '4',
      restoreMissing: 'true',
      defaultSize: '2G',
    });
  });

  it('ranks flags over the environment over the file over the defaults', async () => {
    const path = await file({
      socket: '/run/file.sock',
      'data-root': '/srv/file',
      'default-fs': 'xfs',
      'log-level': 'warn',
    });
    const flags = { config: path, socket: '/run/flag.sock' };
    const env = { [ENV.socket]: '/run/env.sock', [ENV.dataRoot]: '/srv/env' };
    const config = resolveConfig(flags, env, await settingsFromConfigFile(flags, env));
    expect(config).toMatchObject({
      configFile: path,
      socket: '/run/flag.sock',
      dataRoot: '/srv/env',
      defaultFs: 'xfs',
      logLevel: 'warn',
      spares: Number(DEFAULTS.spares),
    });
  });

  it('is found through LOOPVOL_CONFIG when --config is absent, and is optional', async () => {
    const path = await file({ 'default-fs': 'xfs' });
    expect(await settingsFromConfigFile({}, { [ENV.config]: path })).toEqual({ defaultFs: 'xfs' });
    expect(await settingsFromConfigFile({}, {})).toEqual({});
  });

  it.each([
    [{ 'data-root': 'relative' }, /"data-root" in \S+ must be an absolute path/],
    [{ spares: 99 }, /"spares" in \S+ takes a whole number from 0 to 16/],
    [{ 'default-fs': ['xfs'] }, /"default-fs" in \S+ must be a string, number or boolean/],
    [{ dataRoot: '/srv' }, /unknown setting "dataRoot" \(keys are the flags' names\)/],
    [{ config: '/etc/other.json' }, /unknown setting "config"/],
    [[1, 2], /must hold a JSON object/],
  ])('refuses %j naming the key', async (content, message) => {
    await expect(readConfigFile(await file(content))).rejects.toThrow(message);
  });

  it('says when the file is missing or not JSON', async () => {
    await expect(readConfigFile(join(dir, 'absent.json'))).rejects.toThrow(
      /cannot read config file .*absent.json/,
    );
    await expect(readConfigFile(await file('{"spares": 4,}'))).rejects.toThrow(/config file \S+ is not JSON/);
  });
});

describe('the env file template', () => {
  it('lists every setting, commented out at its default, with its flag', () => {
    const template = envTemplate();
    for (const k of SETTING_KEYS) {
      const { env, flag } = SETTINGS[k];
      expect(template).toContain(`\n#${env}=${SETTINGS[k].default}\n`);
      expect(template).toContain(`# --${flag}: `);
    }
    // Nothing is set: systemd would read any uncommented line.
    expect(template.split('\n').filter((l) => l !== '' && !l.startsWith('#'))).toEqual([]);
  });
});

describe('settings that need another', () => {
  it.each([
    [
      { restoreMissing: 'true' },
      '--restore-missing (env LOOPVOL_RESTORE_MISSING) needs --cluster (env LOOPVOL_CLUSTER) and --backup-repo (env LOOPVOL_BACKUP_REPO)',
    ],
    [{ backupKeep: '7' }, '--backup-keep (env LOOPVOL_BACKUP_KEEP) needs --backup-repo'],
    [
      { backupPasswordFile: '/etc/pw' },
      '--backup-password-file (env LOOPVOL_BACKUP_PASSWORD_FILE) needs --backup-repo',
    ],
    [{ backupRepo: '/srv/repo' }, '--backup-repo (env LOOPVOL_BACKUP_REPO) needs --backup-password-file'],
    [{ clusterTimeout: '30s' }, '--cluster-timeout (env LOOPVOL_CLUSTER_TIMEOUT) needs --cluster'],
    [{ nodeId: 'a' }, '--node-id (env LOOPVOL_NODE_ID) needs --cluster'],
    [{ clusterAuthFile: '/etc/zk' }, '--cluster-auth-file (env LOOPVOL_CLUSTER_AUTH_FILE) needs --cluster'],
  ])('refuses %j alone, naming both', (flags, message) => {
    expect(() => resolveConfig(flags, {})).toThrow(message);
  });

  it('refuses them from the environment too, and accepts them as their default or with what they need', () => {
    expect(() => resolveConfig({}, { [ENV.backupKeep]: '3' })).toThrow(
      '--backup-keep (env LOOPVOL_BACKUP_KEEP) needs',
    );
    expect(() => resolveConfig({ backupKeep: '0', restoreMissing: 'false' }, {})).not.toThrow();
    const both = {
      cluster: 'zk://127.0.0.1:2181/loopvol',
      backupRepo: '/srv/r',
      backupPasswordFile: '/etc/pw',
    };
    expect(resolveConfig({ ...both, restoreMissing: 'true' }, {}).cluster?.restoreMissing).toBe(true);
  });

  it('names every requirement after a setting', () => {
    for (const k of SETTING_KEYS)
      for (const r of SETTINGS[k].requires ?? []) expect(SETTING_KEYS).toContain(r);
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { appendFile, lstat, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTING_KEYS, SETTINGS } from '../../src/config/settings.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { runLoopvol } from '../helpers/int-process.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { call } from '../helpers/plugin.js';
import { makeRepository } from '../helpers/restic.js';
import { storageAvailable } from '../helpers/tools.js';

const INSTALL = new URL('../../scripts/install', import.meta.url).pathname;
const A = 'a'.repeat(64);
/** systemd's PATH for services: no nvm, no test tooling. */
const SYSTEMD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The variables of an env file as systemd's EnvironmentFile= reads them (this file has no quotes). */
async function readEnvFile(path: string): Promise<Record<string, string>> {
  const lines = (await readFile(path, 'utf8'))
    .split('\n')
    .filter((l) => l.includes('=') && !l.startsWith('#'));
  return Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/**
 * scripts/install into a temp prefix, then the daemon run as the unit runs it: the installed
 * program through its PATH link, settings from the env file only, ready when wait-ready says so.
 */
describe.runIf(storageAvailable())('scripts/install: install, upgrade, uninstall', () => {
  let dir: string;
  let paths: { prefix: string; etc: string; units: string; bin: string; root: string; socket: string };
  let env: Record<string, string>;
  const daemons: ChildProcess[] = [];

  beforeAll(async () => {
    dir = await makeTempDir('int-install');
    paths = {
      prefix: join(dir, 'opt/loopvol'),
      etc: join(dir, 'etc/loopvol'),
      units: join(dir, 'units'),
      bin: join(dir, 'bin'),
      root: join(dir, 'data'),
      socket: join(dir, 'loopvol.sock'),
    };
    env = {
      LOOPVOL_PREFIX: paths.prefix,
      LOOPVOL_ETC: paths.etc,
      LOOPVOL_UNIT_DIR: paths.units,
      LOOPVOL_BIN_DIR: paths.bin,
      LOOPVOL_INSTALL_SKIP_APT: '1',
    };
  });
  afterAll(async () => {
    for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL');
    if (dir) await cleanupTempDir(dir);
  });

  const install = (...args: string[]) =>
    execa(INSTALL, args, { env, extendEnv: true, reject: false, all: true, timeout: 120_000 });

  /** Starts the installed daemon with the env file's settings and waits as ExecStartPost= does. */
  async function startDaemon(): Promise<ChildProcess> {
    const settings = { PATH: SYSTEMD_PATH, ...(await readEnvFile(join(paths.etc, 'loopvol.env'))) };
    const daemon = spawn(join(paths.bin, 'loopvol'), ['serve'], {
      env: settings,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemons.push(daemon);
    let output = '';
    daemon.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const ready = await execa(join(paths.bin, 'loopvol'), ['wait-ready', '--timeout', '20s'], {
      env: settings,
      extendEnv: false,
      reject: false,
      all: true,
    });
    expect(ready.exitCode, `${ready.all}\n${output}`).toBe(0);
    return daemon;
  }

  const stopDaemon = (daemon: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      daemon.once('exit', (code) => resolve(code));
      daemon.kill('SIGTERM');
    });

  const loopvol = (...args: string[]) =>
    execa(join(paths.bin, 'loopvol'), [...args, '--socket', paths.socket], { env: { PATH: SYSTEMD_PATH } });

  it('installs, runs with backups from the env file, upgrades under a mounted volume, uninstalls', async () => {
    const first = await install();
    expect(first.exitCode, first.all).toBe(0);
    expect(first.all).toContain(`installed ${paths.prefix}`);
    expect(await readlink(join(paths.bin, 'loopvol'))).toBe(join(paths.prefix, 'bin/loopvol'));
    expect(await readlink(join(paths.bin, 'dvdcli'))).toBe(join(paths.prefix, 'bin/dvdcli'));
    const unit = await readFile(join(paths.units, 'loopvol.service'), 'utf8');
    expect(unit).toContain(`EnvironmentFile=-${paths.etc}/loopvol.env\n`);
    expect(unit).toContain(`ExecStart=${paths.prefix}/bin/loopvol serve\n`);
    expect(unit).toContain(`ExecStartPost=${paths.prefix}/bin/loopvol wait-ready`);
    const envFile = join(paths.etc, 'loopvol.env');
    expect((await stat(envFile)).mode & 0o777).toBe(0o600);
    const template = await readFile(envFile, 'utf8');
    for (const k of SETTING_KEYS) expect(template).toContain(`\n#${SETTINGS[k].env}=`);
    // Dev dependencies stay out of the install.
    await expect(lstat(join(paths.prefix, 'node_modules/vitest'))).rejects.toMatchObject({ code: 'ENOENT' });

    // The operator configures the daemon, backups included, in the env file, and some settings in
    // the JSON file it names.
    const { repo, password } = await makeRepository(dir);
    const configFile = join(paths.etc, 'config.json');
    await writeFile(
      configFile,
      JSON.stringify({ 'default-size': '64M', spares: 0, 'data-root': '/not/this' }),
    );
    await appendFile(
      envFile,
      [
        `LOOPVOL_SOCKET=${paths.socket}`,
        `LOOPVOL_DATA_ROOT=${paths.root}`,
        `LOOPVOL_CONFIG=${configFile}`,
        `LOOPVOL_BACKUP_REPO=${repo}`,
        `LOOPVOL_BACKUP_PASSWORD_FILE=${password}`,
        '',
      ].join('\n'),
    );
    let daemon = await startDaemon();
    expect((await call(paths.socket, 'VolumeDriver.Create', { Name: 'kept', Opts: null })).status).toBe(200);
    const mounted = await call(paths.socket, 'VolumeDriver.Mount', { Name: 'kept', ID: A });
    const mountPoint = String(mounted.body.Mountpoint);
    // The env file wins over the config file (data root); the config file over the defaults (size).
    expect(mountPoint.startsWith(`${paths.root}/`)).toBe(true);
    expect((await call(paths.socket, 'VolumeDriver.Get', { Name: 'kept' })).body).toMatchObject({
      Volume: { Status: { size: 64 * 1024 * 1024 } },
    });
    await writeFile(join(mountPoint, 'data'), 'survives the upgrade');
    await loopvol('backup', 'kept');
    expect((await loopvol('backups', 'kept', '--json')).stdout).toContain('kept');

    // Upgrade: install over it, then restart the daemon as systemctl restart would.
    await writeFile(join(paths.prefix, 'stale-file'), 'from the old version');
    const again = await install();
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toContain(`upgraded ${paths.prefix}`);
    expect(again.all).toContain(`kept your ${envFile}`);
    expect(await readEnvFile(envFile)).toMatchObject({ LOOPVOL_BACKUP_REPO: repo });
    await expect(lstat(join(paths.prefix, 'stale-file'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await stopDaemon(daemon)).toBe(0);
    expect(await mountAt(mountPoint), 'the volume stays mounted while loopvol restarts').toBeDefined();
    daemon = await startDaemon();
    expect((await call(paths.socket, 'VolumeDriver.Get', { Name: 'kept' })).body).toMatchObject({
      Volume: { Mountpoint: mountPoint, Status: { holders: 1 } },
    });
    expect(await readFile(join(mountPoint, 'data'), 'utf8')).toBe('survives the upgrade');

    // --purge refuses while a volume is mounted, and removes nothing.
    const purge = await install('--uninstall', '--purge');
    expect(purge.exitCode).toBe(1);
    expect(purge.all).toContain(`mounted: ${mountPoint}`);
    expect((await stat(join(paths.prefix, 'bin/loopvol'))).isFile()).toBe(true);

    expect((await call(paths.socket, 'VolumeDriver.Unmount', { Name: 'kept', ID: A })).status).toBe(200);
    expect(await stopDaemon(daemon)).toBe(0);

    // Uninstall, run from the installed copy as an operator would once the checkout is gone.
    const removed = await execa(join(paths.prefix, 'scripts/install'), ['--uninstall'], {
      env,
      reject: false,
      all: true,
    });
    expect(removed.exitCode, removed.all).toBe(0);
    for (const gone of [paths.prefix, join(paths.units, 'loopvol.service'), join(paths.bin, 'loopvol')]) {
      await expect(lstat(gone)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    expect(removed.all).toContain(`kept: volumes' data in ${paths.root}`);
    expect((await stat(join(paths.root, 'volumes/kept/disk.img'))).isFile()).toBe(true);
    expect((await readEnvFile(envFile)).LOOPVOL_DATA_ROOT).toBe(paths.root);

    // With nothing mounted, --purge deletes the settings and the data root the env file names.
    const purged = await install('--uninstall', '--purge');
    expect(purged.exitCode, purged.all).toBe(0);
    for (const gone of [paths.etc, paths.root])
      await expect(lstat(gone)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 300_000);

  it('wait-ready fails after its timeout when nothing answers, naming the socket', async () => {
    const socket = join(dir, 'nobody.sock');
    const run = await runLoopvol(['wait-ready', '--socket', socket, '--timeout', '300ms']);
    expect(run.code).toBe(1);
    expect(run.output).toContain(`the daemon did not answer on ${socket} within 300ms`);
    expect((await runLoopvol(['wait-ready', '--timeout', 'soon'])).code).toBe(2);
  });

  it('refuses to run as another user than root, suggesting sudo', async () => {
    const run = await execa(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', INSTALL],
      {
        env,
        reject: false,
        all: true,
      },
    );
    expect(run.exitCode).toBe(1);
    expect(run.all).toMatch(/must run as root .*: sudo /);
  });
});

import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;

/** Runs bin/dvdcli as the Mesos isolator does: its own process, stdout read back. */
function dvdcli(dir: string, args: string[], env: Record<string, string> = {}) {
  return execa(process.execPath, [DVDCLI, ...args], {
    reject: false,
    env: {
      LOOPVOL_PLUGIN_SOCKETS_DIR: join(dir, 'sockets'),
      LOOPVOL_PLUGIN_SPEC_DIRS: join(dir, 'specs'),
      ...env,
    },
  });
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount']))(
  'dvdcli against loopvol',
  () => {
    let dir: string;
    let plugin: PluginProcess;
    const flags = (name: string, ...more: string[]) => [
      '--volumedriver=loopvol',
      `--volumename=${name}`,
      ...more,
    ];
    const status = async (name: string) =>
      (
        (await plugin.call('VolumeDriver.Get', { Name: name })).body.Volume as {
          Status: Record<string, unknown>;
        }
      ).Status;

    beforeAll(async () => {
      dir = await makeTempDir('dvdcli-loopvol');
      await mkdir(join(dir, 'sockets'));
      await mkdir(join(dir, 'specs'));
      plugin = await startPlugin(dir, { socket: join(dir, 'sockets', 'loopvol.sock') });
    });
    afterAll(async () => {
      await plugin?.stop();
      if (dir) await cleanupTempDir(dir);
    });

    it('mount creates with options, prints only the mountpoint; unmount releases it', async () => {
      const mount = await dvdcli(dir, ['mount', ...flags('pg', '--volumeopts=size=100M,fs=ext4')]);
      expect(mount.exitCode, mount.stderr).toBe(0);
      expect(mount.stdout).toBe(join(plugin.dataRoot, 'volumes', 'pg', 'mnt'));
      await writeFile(join(mount.stdout, 'PG_VERSION'), '16');
      expect(await status('pg')).toMatchObject({
        size: 100 * 1024 * 1024,
        fs: 'ext4',
        mounted: true,
        holders: 1,
      });

      const unmount = await dvdcli(dir, ['unmount', ...flags('pg')]);
      expect(unmount.exitCode, unmount.stderr).toBe(0);
      expect(unmount.stdout).toBe('');
      expect(await status('pg')).toMatchObject({ mounted: false, holders: 0 });
      expect(await kernelStateUnder(plugin.dataRoot)).toEqual({ mounts: [], loops: [] });
    });

    it('follows the isolator: N mounts without ID, one unmount leaves the volume unmounted', async () => {
      for (let i = 0; i < 3; i++) {
        const mount = await dvdcli(dir, ['mount', ...flags('shared', '--volumeopts=size=64M')]);
        expect(mount.exitCode, mount.stderr).toBe(0);
      }
      expect(await status('shared')).toMatchObject({ mounted: true, holders: 1 });
      expect((await dvdcli(dir, ['unmount', ...flags('shared')])).exitCode).toBe(0);
      expect(await status('shared')).toMatchObject({ mounted: false, holders: 0 });
      expect(await kernelStateUnder(plugin.dataRoot)).toEqual({ mounts: [], loops: [] });
    });

    it('takes Marathon options: size as bare GiB and fs=xfs', async () => {
      const mount = await dvdcli(dir, [
        'mount',
        ...flags('marathon', '--volumeopts=size=1', '--volumeopts=fs=xfs'),
      ]);
      expect(mount.exitCode, mount.stderr).toBe(0);
      expect(await status('marathon')).toMatchObject({ size: 1024 ** 3, fs: 'xfs' });
      expect((await dvdcli(dir, ['unmount', ...flags('marathon')])).exitCode).toBe(0);
    });

    it('with --explicitcreate refuses an absent volume, and mounts it once created', async () => {
      const refused = await dvdcli(dir, ['mount', ...flags('explicit', '--explicitcreate')]);
      expect(refused.exitCode).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(
        'volume explicit does not exist and --explicitcreate forbids creating it',
      );
      expect((await plugin.call('VolumeDriver.Get', { Name: 'explicit' })).status).not.toBe(200);

      expect((await dvdcli(dir, ['create', ...flags('explicit', '--volumeopts=size=64M')])).exitCode).toBe(0);
      const mount = await dvdcli(dir, ['mount', ...flags('explicit', '--explicitcreate')]);
      expect(mount.exitCode, mount.stderr).toBe(0);
      expect((await dvdcli(dir, ['path', ...flags('explicit')])).stdout).toBe(mount.stdout);
      expect((await dvdcli(dir, ['unmount', ...flags('explicit')])).exitCode).toBe(0);
    });

    it('lists, gets and removes; reports the plugin error with exit 1', async () => {
      const list = await dvdcli(dir, ['list', '--volumedriver=loopvol']);
      expect(list.stdout.split('\n')).toEqual(expect.arrayContaining(['pg', 'shared', 'explicit']));
      const listJson = await dvdcli(dir, ['list', '--volumedriver=loopvol', '--json']);
      expect(JSON.parse(listJson.stdout).map((v: { Name: string }) => v.Name)).toEqual(
        expect.arrayContaining(['pg', 'shared', 'explicit']),
      );
      expect(await dvdcli(dir, ['get', ...flags('pg')])).toMatchObject({ stdout: 'pg', exitCode: 0 });
      expect(JSON.parse((await dvdcli(dir, ['get', ...flags('pg'), '--json'])).stdout)).toMatchObject({
        Name: 'pg',
        Status: { fs: 'ext4' },
      });
      expect((await dvdcli(dir, ['remove', ...flags('pg')])).exitCode).toBe(0);
      const again = await dvdcli(dir, ['remove', ...flags('pg')]);
      expect(again.exitCode).toBe(1);
      expect(again.stderr).toContain('dvdcli: VolumeDriver.Get: volume pg does not exist');
      const bad = await dvdcli(dir, ['mount', ...flags('bad', '--volumeopts=size=-1')]);
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toContain('VolumeDriver.Create: cannot create volume bad: size "-1" is not a size');
    });
  },
);

/** A minimal second volume plugin: records every call; `hang` makes it never answer. */
function recordingPlugin() {
  const calls: { method: string; body: string }[] = [];
  const created = new Set<string>();
  const mounted = new Set<string>();
  let hang = false;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      const method = (req.url ?? '').slice(1);
      calls.push({ method, body });
      if (hang) return;
      const name = body ? (JSON.parse(body) as { Name?: string }).Name : undefined;
      const reply = (status: number, payload: object) => res.writeHead(status).end(JSON.stringify(payload));
      if (name === 'fails') return reply(500, { Err: 'disk on fire' });
      switch (method) {
        case 'Plugin.Activate':
          return reply(200, { Implements: ['VolumeDriver'] });
        case 'VolumeDriver.Get':
          return name && created.has(name)
            ? reply(200, { Volume: { Name: name, Mountpoint: mounted.has(name) ? `/fake/mnt/${name}` : '' } })
            : reply(200, { Err: 'no such volume' });
        case 'VolumeDriver.Create':
          if (name) created.add(name);
          return reply(200, {});
        case 'VolumeDriver.Mount':
          if (name) mounted.add(name);
          return reply(200, { Mountpoint: `/fake/mnt/${name}` });
        case 'VolumeDriver.Unmount':
          if (name) mounted.delete(name);
          return reply(200, {});
        case 'VolumeDriver.Path':
          return reply(200, { Mountpoint: name === 'pathonly' ? '/fake/path/pathonly' : '' });
        case 'VolumeDriver.List':
          return reply(200, { Volumes: [...created].sort().map((n) => ({ Name: n })) });
        default:
          return reply(200, {});
      }
    });
  });
  return {
    server,
    calls,
    /** Lets a test start from a volume the plugin already has. */
    has: (name: string) => created.add(name),
    /** Forgets every volume: each test starts from an empty plugin. */
    forget: () => {
      created.clear();
      mounted.clear();
    },
    reset: () => {
      calls.length = 0;
      hang = false;
    },
    hangNext: () => {
      hang = true;
    },
  };
}

describe('dvdcli against another volume plugin (unix socket and tcp .spec)', () => {
  let dir: string;
  const unix = recordingPlugin();
  const tcp = recordingPlugin();

  beforeAll(async () => {
    dir = await makeTempDir('dvdcli-other');
    await mkdir(join(dir, 'sockets'));
    await mkdir(join(dir, 'specs'));
    await new Promise<void>((r) => unix.server.listen(join(dir, 'sockets', 'other.sock'), r));
    await new Promise<void>((r) => tcp.server.listen(0, '127.0.0.1', r));
    const { port } = tcp.server.address() as AddressInfo;
    await writeFile(join(dir, 'specs', 'remote.spec'), `tcp://127.0.0.1:${port}\n`);
  });
  beforeEach(() => {
    for (const plugin of [unix, tcp]) {
      plugin.reset();
      plugin.forget();
    }
  });
  afterAll(async () => {
    for (const s of [unix.server, tcp.server]) {
      s.closeAllConnections();
      s.close();
    }
    if (dir) await cleanupTempDir(dir);
  });

  it.each([
    ['other', unix],
    ['remote', tcp],
  ])('speaks in dvdcli order to %s', async (driver, plugin) => {
    const mount = await dvdcli(dir, [
      'mount',
      `--volumedriver=${driver}`,
      '--volumename=v',
      '--volumeopts=size=5',
    ]);
    expect(mount.exitCode, mount.stderr).toBe(0);
    expect(mount.stdout).toBe('/fake/mnt/v');
    expect(plugin.calls).toEqual([
      { method: 'Plugin.Activate', body: '' },
      { method: 'VolumeDriver.Get', body: '{"Name":"v"}' },
      { method: 'VolumeDriver.Create', body: '{"Name":"v","Opts":{"size":"5"}}' },
      { method: 'VolumeDriver.Mount', body: '{"Name":"v"}' },
    ]);

    plugin.reset();
    expect((await dvdcli(dir, ['mount', `--volumedriver=${driver}`, '--volumename=v'])).exitCode).toBe(0);
    expect(plugin.calls.map((c) => c.method)).toEqual([
      'Plugin.Activate',
      'VolumeDriver.Get',
      'VolumeDriver.Mount',
    ]);

    plugin.reset();
    expect((await dvdcli(dir, ['unmount', `--volumedriver=${driver}`, '--volumename=v'])).exitCode).toBe(0);
    expect(plugin.calls).toEqual([
      { method: 'Plugin.Activate', body: '' },
      { method: 'VolumeDriver.Get', body: '{"Name":"v"}' },
      { method: 'VolumeDriver.Unmount', body: '{"Name":"v"}' },
    ]);
  });

  /** Runs dvdcli against the unix-socket plugin; returns what the Go dvdcli's callers read. */
  async function replay(...args: string[]) {
    unix.reset();
    const run = await dvdcli(dir, [...args]);
    return {
      stdout: run.stdout,
      exitCode: run.exitCode,
      calls: unix.calls.map((c) => (c.body ? `${c.method} ${c.body}` : c.method)),
    };
  }

  it('pins every command: stdout, exit code and calls, as the Go dvdcli 0.2 (7dede14)', async () => {
    const d = '--volumedriver=other';
    const c1 = '--volumename=c1';
    /** One command succeeding with `stdout` after exactly Activate and `calls`. */
    const pin = async (args: string[], stdout: string, ...calls: string[]) =>
      expect(await replay(...args)).toEqual({ stdout, exitCode: 0, calls: ['Plugin.Activate', ...calls] });
    const get = 'VolumeDriver.Get {"Name":"c1"}';

    await pin(
      ['create', d, c1, '--volumeopts=size=5,fs=xfs'],
      '',
      'VolumeDriver.Create {"Name":"c1","Opts":{"size":"5","fs":"xfs"}}',
    );
    unix.has('m1');
    await pin(['list', d], 'c1\nm1', 'VolumeDriver.List {}');
    expect((await replay('list', d, '--json')).stdout).toBe('[{"Name":"c1"},{"Name":"m1"}]');
    await pin(['get', d, c1], 'c1', get);
    expect((await replay('get', d, c1, '--json')).stdout).toBe('{"Name":"c1","Mountpoint":""}');
    // Not mounted: Get has no Mountpoint, so Path is asked; it has none either, and nothing is printed.
    await pin(['path', d, c1], '', get, 'VolumeDriver.Path {"Name":"c1"}');
    unix.has('pathonly');
    expect((await replay('path', d, '--volumename=pathonly')).stdout).toBe('/fake/path/pathonly');
    await pin(['mount', d, c1], '/fake/mnt/c1', get, 'VolumeDriver.Mount {"Name":"c1"}');
    // Mounted: Get's Mountpoint answers, no Path call.
    await pin(['path', d, c1], '/fake/mnt/c1', get);
    await pin(['unmount', d, c1], '', get, 'VolumeDriver.Unmount {"Name":"c1"}');
    await pin(['remove', d, c1], '', get, 'VolumeDriver.Remove {"Name":"c1"}');
    const version = await replay('version');
    expect(version.exitCode).toBe(0);
    expect(version.calls).toEqual([]);
    expect(version.stdout.split('\n').map((l) => l.split(':')[0])).toEqual([
      'Binary',
      'SemVer',
      'OsArch',
      'Branch',
      'Commit',
      'Formed',
    ]);
  });

  it('takes what real callers send: camel-case --explicitCreate, one --volumeopts per option, values with =', async () => {
    const refused = await replay(
      'mount',
      '--volumedriver=other',
      '--volumename=absent',
      '--explicitCreate=true',
    );
    expect(refused).toEqual({
      stdout: '',
      exitCode: 1,
      calls: ['Plugin.Activate', 'VolumeDriver.Get {"Name":"absent"}'],
    });
    const created = await replay(
      'mount',
      '--volumedriver=other',
      '--volumename=opts',
      '--volumeopts=size=5',
      '--volumeopts',
      'fs=ext4,label=a=b',
      '--explicitCreate=false',
    );
    expect(created.exitCode).toBe(0);
    expect(created.calls).toContain(
      'VolumeDriver.Create {"Name":"opts","Opts":{"size":"5","fs":"ext4","label":"a=b"}}',
    );
  });

  it('fails with exit 1 and nothing on stdout for each kind of failure, having called only what it could', async () => {
    const missing = await dvdcli(dir, ['get', '--volumedriver=nosuch', '--volumename=v']);
    expect(missing).toMatchObject({ exitCode: 1, stdout: '' });
    expect(missing.stderr).toMatch(/^dvdcli: .*nosuch/m);
    expect(await replay('get', '--volumedriver=other', '--volumename=absent')).toEqual({
      stdout: '',
      exitCode: 1,
      calls: ['Plugin.Activate', 'VolumeDriver.Get {"Name":"absent"}'],
    });
    expect(await replay('remove', '--volumedriver=other', '--volumename=absent')).toEqual({
      stdout: '',
      exitCode: 1,
      calls: ['Plugin.Activate', 'VolumeDriver.Get {"Name":"absent"}'],
    });
    const usage = await dvdcli(dir, ['list']);
    expect(usage).toMatchObject({ exitCode: 1, stdout: '' });
  });

  it('exits 1 with the plugin message on an error reply', async () => {
    const result = await dvdcli(dir, ['unmount', '--volumedriver=other', '--volumename=fails']);
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('dvdcli: VolumeDriver.Get: disk on fire');
  });

  it('gives up after DVDCLI_TIMEOUT when the plugin never answers', async () => {
    unix.hangNext();
    const result = await dvdcli(dir, ['mount', '--volumedriver=other', '--volumename=v'], {
      DVDCLI_TIMEOUT: '1',
    });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('dvdcli: Plugin.Activate: no answer within 1 s');
  });
});

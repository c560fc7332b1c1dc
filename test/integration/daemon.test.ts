import { lstat, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Layout } from '../../src/state/layout.js';
import { run } from '../../src/system/exec.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { drained, runLoopvol } from '../helpers/int-process.js';
import { type Case, endCase, newCase } from '../helpers/int-service.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, type StartOptions, startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const A = 'a'.repeat(64);

/** The daemon's JSON log lines; fails on the first line that is not JSON. */
function logLines(plugin: PluginProcess): Record<string, unknown>[] {
  return plugin
    .logs()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`log line is not JSON: ${line}`);
      }
    });
}

describe.runIf(storageAvailable())('loopvol serve as a process', () => {
  let dir: string;
  let c: Case | undefined;
  const plugins: PluginProcess[] = [];

  beforeAll(async () => {
    dir = await makeTempDir('int-daemon');
  });
  afterEach(async () => {
    // SIGKILL whatever a failed test left running (its own handles only), then release the kernel.
    for (const plugin of plugins.splice(0)) await plugin.kill();
    const done = c;
    c = undefined;
    await endCase(done);
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  async function start(options: StartOptions = {}): Promise<PluginProcess> {
    c ??= await newCase(dir);
    const plugin = await startPlugin(c.dir, options);
    plugins.push(plugin);
    return plugin;
  }

  it('serves its socket with mode 0660', async () => {
    const plugin = await start();
    expect((await stat(plugin.socket)).mode & 0o777).toBe(0o660);
    expect(await plugin.stop()).toBe(0);
  });

  it('exits 0 on SIGTERM, removes its socket and leaves mounted volumes mounted', async () => {
    const plugin = await start();
    expect((await plugin.call('VolumeDriver.Create', { Name: 'kept', Opts: null })).status).toBe(200);
    const mounted = await plugin.call('VolumeDriver.Mount', { Name: 'kept', ID: A });
    const mountPoint = String(mounted.body.Mountpoint);
    expect(mountPoint).toMatch(/kept\/mnt$/);

    expect(await plugin.stop()).toBe(0);
    await drained(plugin);
    await expect(lstat(plugin.socket)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await mountAt(mountPoint)).toBeDefined();
    expect(logLines(plugin).map((l) => l.msg)).toContain('stopped');

    // The container still runs; its later stop reaches the next plugin.
    const next = await start();
    expect((await next.call('VolumeDriver.Get', { Name: 'kept' })).body).toMatchObject({
      Volume: { Mountpoint: mountPoint, Status: { holders: 1 } },
    });
    expect((await next.call('VolumeDriver.Unmount', { Name: 'kept', ID: A })).status).toBe(200);
    expect(await mountAt(mountPoint)).toBeUndefined();
    expect(await next.stop()).toBe(0);
  });

  it('replaces the stale socket of a SIGKILLed plugin', async () => {
    const first = await start();
    await first.kill();
    expect((await lstat(first.socket)).isSocket()).toBe(true);

    const second = await start();
    expect((await second.call('Plugin.Activate', '')).body).toEqual({ Implements: ['VolumeDriver'] });
    expect((await stat(second.socket)).mode & 0o777).toBe(0o660);
    expect(await second.stop()).toBe(0);
  });

  it('refuses to start on the socket of a live plugin, leaving it serving', async () => {
    const live = await start();
    await live.call('VolumeDriver.Create', { Name: 'shared' });
    const mountPoint = String(
      (await live.call('VolumeDriver.Mount', { Name: 'shared', ID: A })).body.Mountpoint,
    );

    const second = await runLoopvol(['serve', '--socket', live.socket, '--data-root', live.dataRoot]);
    expect(second.code).toBe(1);
    expect(second.output).toMatch(/another process is serving .*plugin\.sock/);

    expect((await live.call('VolumeDriver.List', {})).body).toEqual({
      Volumes: [{ Name: 'shared', Mountpoint: mountPoint }],
    });
    await live.call('VolumeDriver.Unmount', { Name: 'shared', ID: A });
    expect(await live.stop()).toBe(0);
  });

  it('refuses a socket path that is not a socket, and leaves the file alone', async () => {
    c = await newCase(dir);
    const path = join(c.dir, 'not-a-socket');
    await writeFile(path, 'mine');
    const refused = await runLoopvol(['serve', '--socket', path, '--data-root', join(c.dir, 'root')]);
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/exists and is not a socket/);
    expect(await readFile(path, 'utf8')).toBe('mine');
  });

  it('answers requests that arrive while a slow reconcile runs', async () => {
    const first = await start();
    await first.call('VolumeDriver.Create', { Name: 'data' });
    expect(await first.stop()).toBe(0);

    // A FIFO as a volume's metadata blocks reconcile's read until the test writes to it: a start-up
    // as slow as the test wants, with no timing involved.
    const layout = new Layout(first.dataRoot);
    const record = JSON.parse(await readFile(layout.volume('data').meta, 'utf8'));
    await mkdir(layout.volume('slow').dir);
    await run('mkfifo', ['--', layout.volume('slow').meta]);

    const plugin = await start();
    const list = plugin.call('VolumeDriver.List', {});
    const get = plugin.call('VolumeDriver.Get', { Name: 'data' });
    expect((await plugin.call('VolumeDriver.Capabilities', {})).status).toBe(200);
    expect(plugin.logs()).not.toContain('state reconciled');

    await writeFile(layout.volume('slow').meta, JSON.stringify({ ...record, name: 'slow' }));
    expect(await list).toMatchObject({
      status: 200,
      body: {
        Volumes: [
          { Name: 'data', Mountpoint: '' },
          { Name: 'slow', Mountpoint: '' },
        ],
      },
    });
    expect(await get).toMatchObject({ status: 200, body: { Volume: { Name: 'data' } } });

    expect(await plugin.stop()).toBe(0);
    await drained(plugin);

    // They waited for reconcile rather than answering from a half-loaded state.
    const messages = logLines(plugin).map((l) => `${l.msg}:${l.method ?? ''}`);
    const reconciled = messages.indexOf('state reconciled with the kernel:');
    expect(reconciled).toBeGreaterThan(-1);
    expect(messages.indexOf('request:VolumeDriver.List')).toBeGreaterThan(reconciled);
    expect(messages.indexOf('request:VolumeDriver.Get')).toBeGreaterThan(reconciled);
  });

  it('logs one short line for a human with --log-format pretty', async () => {
    const plugin = await start({ args: ['--log-format', 'pretty'] });
    await plugin.call('VolumeDriver.Create', { Name: 'pretty', Opts: { size: '64M' } });
    await plugin.call('VolumeDriver.Remove', { Name: 'pretty' });
    expect(await plugin.stop()).toBe(0);
    await drained(plugin);
    const lines = plugin
      .logs()
      .split('\n')
      .filter((line) => line.trim() !== '');
    expect(lines.filter((line) => line.startsWith('{'))).toEqual([]);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^\d\d:\d\d:\d\d INFO {2}request volume=pretty req=\w{8} method=VolumeDriver\.Create /,
      ),
    );
  });

  it('logs only JSON, with method, volume, duration and outcome on every request line', async () => {
    const plugin = await start();
    await plugin.call('VolumeDriver.Create', { Name: 'logged', Opts: { size: '64M' } });
    await plugin.call('VolumeDriver.Mount', { Name: 'logged', ID: A });
    await plugin.call('VolumeDriver.Get', { Name: 'logged' });
    await plugin.call('VolumeDriver.Unmount', { Name: 'logged', ID: A });
    await plugin.call('VolumeDriver.Remove', { Name: 'logged' });
    await plugin.call('VolumeDriver.Get', { Name: 'missing' });
    await plugin.call('VolumeDriver.Create', { Name: 'bad-opts', Opts: { color: 'red' } });
    await plugin.call('VolumeDriver.List', 'not json');
    await plugin.call('VolumeDriver.List', {});
    expect(await plugin.stop()).toBe(0);
    await drained(plugin);

    const lines = logLines(plugin);
    const requests = lines.filter((l) => l.msg === 'request');
    for (const line of requests) {
      expect(line).toMatchObject({ method: expect.any(String), durationMs: expect.any(Number) });
      expect(['ok', 'error']).toContain(line.outcome);
    }
    const byMethodAndVolume = requests.map((l) => [l.method, l.volume ?? null, l.outcome]);
    expect(byMethodAndVolume).toEqual(
      expect.arrayContaining([
        ['VolumeDriver.Create', 'logged', 'ok'],
        ['VolumeDriver.Mount', 'logged', 'ok'],
        ['VolumeDriver.Get', 'logged', 'ok'],
        ['VolumeDriver.Unmount', 'logged', 'ok'],
        ['VolumeDriver.Remove', 'logged', 'ok'],
        ['VolumeDriver.Get', 'missing', 'error'],
        ['VolumeDriver.Create', 'bad-opts', 'error'],
        ['VolumeDriver.List', null, 'error'],
        ['VolumeDriver.List', null, 'ok'],
      ]),
    );
    const refused = requests.find((l) => l.volume === 'bad-opts');
    expect(refused).toMatchObject({ status: 400, error: expect.stringContaining('"color"') });
    // Lines a request caused carry its volume too (the service logs through the request's logger).
    expect(lines.filter((l) => l.msg === 'volume created')).toEqual([
      expect.objectContaining({ volume: 'logged' }),
    ]);
  });
});

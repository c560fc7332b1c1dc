import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { VolumeError } from '../../src/core/errors.js';
import { createApp, MAX_BODY_BYTES } from '../../src/protocol/routes.js';
import { closeUnix, listenUnix } from '../../src/server/unix-socket.js';
import { fakeDriver, fakeMaintenance, SNAPSHOT, VERIFY } from '../helpers/fake-driver.js';
import { captureLog } from '../helpers/int-log.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { call, type Reply } from '../helpers/plugin.js';

/** A request call() cannot make: another verb, or headers of our choosing. */
function send(
  socket: string,
  method: string,
  path: string,
  body = '',
  headers: Record<string, string> = {},
): Promise<Reply & { contentType: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers }, (res) => {
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        raw += chunk;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: JSON.parse(raw),
          raw,
          contentType: res.headers['content-type'],
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('protocol routes', () => {
  let dir: string;
  let socket: string;
  let server: Server;
  const fake = fakeDriver();
  const logs = captureLog();

  beforeAll(async () => {
    dir = await makeTempDir('routes');
    socket = join(dir, 'plugin.sock');
    server = createServer(createApp(fake.driver, logs.log));
    await listenUnix(server, socket);
  });

  afterAll(async () => {
    if (server) await closeUnix(server, socket, 0);
    if (dir) await cleanupTempDir(dir);
  });

  beforeEach(() => {
    fake.calls.length = 0;
    fake.state.fail = undefined;
  });

  it('answers Activate with an empty body and no Content-Type', async () => {
    const reply = await call(socket, 'Plugin.Activate', '');
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({ Implements: ['VolumeDriver'] });
  });

  it('answers Capabilities with local scope', async () => {
    expect((await call(socket, 'VolumeDriver.Capabilities', {})).body).toEqual({
      Capabilities: { Scope: 'local' },
    });
  });

  it('answers List with {}', async () => {
    const reply = await call(socket, 'VolumeDriver.List', {});
    expect(reply).toMatchObject({ status: 200, body: { Volumes: [{ Name: 'ab', Mountpoint: '' }] } });
  });

  it('parses the body whatever Content-Type is sent', async () => {
    for (const type of ['application/vnd.docker.plugins.v1.2+json', 'text/plain', 'application/json']) {
      const reply = await send(socket, 'POST', '/VolumeDriver.Get', '{"Name":"ab"}', {
        'Content-Type': type,
      });
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ Volume: { Name: 'ab', CreatedAt: '2026-01-02T03:04:05.000Z' } });
    }
  });

  it('answers with a JSON Content-Type', async () => {
    const reply = await send(socket, 'POST', '/VolumeDriver.List', '{}');
    expect(reply.contentType).toMatch(/json/);
  });

  it('passes Name and Opts to Create, and accepts Opts null', async () => {
    expect((await call(socket, 'VolumeDriver.Create', { Name: 'ab', Opts: { size: '1G' } })).body).toEqual(
      {},
    );
    expect((await call(socket, 'VolumeDriver.Create', { Name: 'cd', Opts: null })).status).toBe(200);
    expect((await call(socket, 'VolumeDriver.Create', { Name: 'ef' })).status).toBe(200);
    expect(fake.calls).toEqual([
      { method: 'create', args: ['ab', { size: '1G' }] },
      { method: 'create', args: ['cd', null] },
      { method: 'create', args: ['ef', undefined] },
    ]);
  });

  it('treats an empty, null or absent ID as no ID', async () => {
    for (const body of [{ Name: 'ab', ID: '' }, { Name: 'ab', ID: null }, { Name: 'ab' }]) {
      const reply = await call(socket, 'VolumeDriver.Mount', body);
      expect(reply.body).toEqual({ Mountpoint: '/data/ab/mnt' });
      expect((await call(socket, 'VolumeDriver.Unmount', body)).status).toBe(200);
    }
    expect(fake.calls.map((c) => c.args[1])).toEqual([
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('passes a real ID through', async () => {
    const id = 'f'.repeat(64);
    await call(socket, 'VolumeDriver.Mount', { Name: 'ab', ID: id });
    expect(fake.calls).toEqual([{ method: 'mount', args: ['ab', id] }]);
  });

  it('serves Loopvol.Resize, validating Size', async () => {
    expect(await call(socket, 'Loopvol.Resize', { Name: 'ab', Size: '20G' })).toMatchObject({
      status: 200,
      body: {},
    });
    expect(fake.calls).toEqual([{ method: 'resize', args: ['ab', '20G'] }]);
    const missing = await call(socket, 'Loopvol.Resize', { Name: 'ab' });
    expect(missing).toMatchObject({
      status: 400,
      body: { Err: 'Size is required and must be a string' },
    });
  });

  it('ignores unknown fields dockerd may add', async () => {
    const reply = await call(socket, 'VolumeDriver.Path', { Name: 'ab', Future: { x: 1 } });
    expect(reply).toMatchObject({ status: 200, body: { Mountpoint: '/data/ab/mnt' } });
  });

  it.each(['{"Name":', 'not json', '{"Name":"ab"}}'])(
    'rejects the invalid JSON %j with 400',
    async (body) => {
      const reply = await call(socket, 'VolumeDriver.Get', body);
      expect(reply.status).toBe(400);
      expect(reply.body).toEqual({ Err: 'request body is not valid JSON' });
      expect(fake.calls).toEqual([]);
    },
  );

  it('rejects a body over 1 MiB with 413 and a JSON Err', async () => {
    const body = JSON.stringify({ Name: 'ab', Opts: { size: 'x'.repeat(MAX_BODY_BYTES) } });
    const reply = await call(socket, 'VolumeDriver.Create', body);
    expect(reply.status).toBe(413);
    expect(reply.body.Err).toMatch(/over 1048576 bytes/);
    expect(fake.calls).toEqual([]);
  });

  it('rejects a chunked body that grows over 1 MiB with 413, reading no further', async () => {
    const body = JSON.stringify({ Name: 'ab', Opts: { size: 'x'.repeat(2 * MAX_BODY_BYTES) } });
    const reply = await send(socket, 'POST', '/VolumeDriver.Create', body, {
      'Transfer-Encoding': 'chunked',
    });
    expect(reply.status).toBe(413);
    expect(reply.body.Err).toMatch(/over 1048576 bytes/);
    expect(fake.calls).toEqual([]);
  });

  it('accepts a body just under the limit', async () => {
    const padding = 'x'.repeat(MAX_BODY_BYTES - 100);
    const reply = await call(socket, 'VolumeDriver.Create', { Name: 'ab', Opts: { padding } });
    expect(reply.status).toBe(200);
  });

  it.each(['VolumeDriver.Snapshot', 'Plugin.Deactivate', 'constructor', '__proto__', 'toString'])(
    'answers the unknown method %s with 404 and a JSON Err',
    async (method) => {
      const reply = await call(socket, method, {});
      expect(reply.status).toBe(404);
      expect(reply.body.Err).toMatch(/unknown method/);
    },
  );

  it.each([
    ['GET', '/VolumeDriver.List'],
    ['PUT', '/VolumeDriver.Create'],
    ['POST', '/'],
    ['POST', '/VolumeDriver.Get/extra'],
    ['GET', '/'],
  ])('answers %s %s with 404 and a JSON Err', async (method, path) => {
    const reply = await send(socket, method, path, method === 'GET' ? '' : '{}');
    expect(reply.status).toBe(404);
    expect(reply.body.Err).toMatch(/POST \/<Method>/);
  });

  it('answers a malformed path escape with a JSON Err', async () => {
    const reply = await send(socket, 'POST', '/VolumeDriver.%E0%A4%A', '{}');
    expect(reply.status).toBeGreaterThanOrEqual(400);
    expect(reply.body).toHaveProperty('Err');
  });

  it.each(['VolumeDriver.Create', 'VolumeDriver.Remove', 'VolumeDriver.Mount', 'VolumeDriver.Get'])(
    'answers %s without Name with 400 and a clear message',
    async (method) => {
      const reply = await call(socket, method, {});
      expect(reply.status).toBe(400);
      expect(reply.body).toEqual({ Err: 'Name is required and must be a string' });
    },
  );

  it('answers a body that is not an object with 400', async () => {
    for (const body of ['null', '[]', '"ab"', '5']) {
      const reply = await call(socket, 'VolumeDriver.Get', body);
      expect(reply.status).toBe(400);
      expect(typeof reply.body.Err).toBe('string');
    }
  });

  it.each(['../etc', 'a/b', '.hidden', 'a', 'x'.repeat(256), 'a\u0000b'])(
    'refuses the bad name %j with 400 before the driver sees it',
    async (Name) => {
      const reply = await call(socket, 'VolumeDriver.Create', { Name });
      expect(reply.status).toBe(400);
      expect(reply.body.Err).toMatch(/volume name/);
      expect(fake.calls).toEqual([]);
    },
  );

  it('refuses an ID that is not a string or too long', async () => {
    expect((await call(socket, 'VolumeDriver.Mount', { Name: 'ab', ID: 5 })).status).toBe(400);
    const long = await call(socket, 'VolumeDriver.Mount', { Name: 'ab', ID: 'f'.repeat(257) });
    expect(long).toMatchObject({ status: 400, body: { Err: 'ID is longer than 256 characters' } });
    expect(fake.calls).toEqual([]);
  });

  it('hides an unexpected error behind 500 and a generic message, logging the details', async () => {
    const secret = new Error('EACCES: /var/lib/loopvol/secret path');
    fake.state.fail = secret;
    const reply = await call(socket, 'VolumeDriver.Mount', { Name: 'ab', ID: 'x1' });
    expect(reply.status).toBe(500);
    expect(reply.body).toEqual({ Err: 'internal error in loopvol: see the plugin log for details' });
    expect(reply.raw).not.toContain('EACCES');
    expect(reply.raw).not.toMatch(/\bat .*\.(ts|js):\d+/);
    const logged = logs
      .lines()
      .find((l) => l.msg === 'unexpected failure' && JSON.stringify(l).includes('EACCES'));
    expect(logged).toBeDefined();
  });

  it('hides a thrown non-Error too', async () => {
    fake.state.fail = { code: 'EIO', path: '/dev/loop7' };
    const reply = await call(socket, 'VolumeDriver.Remove', { Name: 'ab' });
    expect(reply.status).toBe(500);
    expect(reply.raw).not.toContain('loop7');
  });

  it.each([
    [404, 'not-found', 'volume ab does not exist'],
    [409, 'conflict', 'volume ab is in use'],
    [400, 'invalid', 'cannot create volume ab: bad option'],
    [409, 'busy', 'volume ab has no holders left but could not be unmounted: busy'],
    [409, 'no-space', 'cannot create volume ab: no space left'],
    [500, 'internal', 'cannot mount volume ab: mount failed'],
  ] as const)('passes a VolumeError with status %i (%s) and its message', async (status, kind, message) => {
    fake.state.fail = new VolumeError(message, kind);
    const reply = await call(socket, 'VolumeDriver.Get', { Name: 'ab' });
    expect(reply.status).toBe(status);
    expect(reply.body).toEqual({ Err: message });
  });

  it('logs one request line with method, volume, duration and outcome', async () => {
    await call(socket, 'VolumeDriver.Path', { Name: 'ab' });
    fake.state.fail = new VolumeError('volume cd does not exist', 'not-found');
    await call(socket, 'VolumeDriver.Get', { Name: 'cd' });
    const requests = logs.lines().filter((l) => l.msg === 'request');
    expect(requests.at(-2)).toMatchObject({ method: 'VolumeDriver.Path', volume: 'ab', outcome: 'ok' });
    expect(requests.at(-1)).toMatchObject({
      method: 'VolumeDriver.Get',
      volume: 'cd',
      outcome: 'error',
      status: 404,
      error: 'volume cd does not exist',
    });
    for (const line of requests.slice(-2)) expect(typeof line.durationMs).toBe('number');
  });

  it('answers even the odd cases with a JSON body', async () => {
    // send() already fails on a non-JSON body; call() keeps it as `unparsed`.
    for (const reply of [
      await call(socket, 'Plugin.Activate', ''),
      await call(socket, 'Nope', ''),
      await call(socket, 'VolumeDriver.Get', '{'),
      await send(socket, 'DELETE', '/x'),
    ]) {
      expect(reply.body).not.toHaveProperty('unparsed');
      expect(() => JSON.parse(reply.raw)).not.toThrow();
    }
  });

  describe('with maintenance and an observer', () => {
    let server2: Server;
    const socket2 = () => join(dir, 'maintained.sock');
    const asked: unknown[][] = [];
    const observed: [string, number, boolean][] = [];
    beforeAll(async () => {
      const maintenance = fakeMaintenance(asked);
      server2 = createServer(
        createApp(fake.driver, logs.log, {
          maintenance,
          observe: (method, seconds, failed) => observed.push([method, seconds, failed]),
        }),
      );
      await listenUnix(server2, socket2());
    });
    afterAll(async () => {
      if (server2) await closeUnix(server2, socket2(), 0);
    });

    it('validates and serves Loopvol.Fsck and Loopvol.Gc', async () => {
      expect((await call(socket2(), 'Loopvol.Fsck', { Name: 'ab', Repair: true })).body).toEqual({
        Fsck: { clean: true, repaired: false, command: 'e2fsck', exitCode: 0, output: [] },
      });
      expect((await call(socket2(), 'Loopvol.Gc', {})).body).toEqual({ Findings: [] });
      expect((await call(socket2(), 'Loopvol.SnapshotCreate', { Name: 'ab', Snapshot: 's1' })).body).toEqual({
        Snapshot: { ...SNAPSHOT, name: 's1' },
      });
      expect((await call(socket2(), 'Loopvol.SnapshotRemove', { Name: 'ab' })).body.Err).toBe(
        'Snapshot is required and must be a string',
      );
      expect(asked).toEqual([
        ['fsck', 'ab', true],
        ['gc', false],
        ['snapshot', 'ab', 's1', false],
      ]);
      const bad = await call(socket2(), 'Loopvol.Fsck', { Name: 'ab', Repair: 'yes' });
      expect(bad.status).toBe(400);
      expect(bad.body.Err).toMatch(/Repair/);
      expect((await call(socket, 'Loopvol.Gc', {})).body.Err).toMatch(/unknown method Loopvol.Gc/);
    });

    it('validates and serves Loopvol.BackupVerify', async () => {
      asked.length = 0;
      expect((await call(socket2(), 'Loopvol.BackupVerify', { Name: 'ab' })).body).toEqual({
        Verify: VERIFY,
      });
      const bad = await call(socket2(), 'Loopvol.BackupVerify', { Name: '../x' });
      expect(bad.status).toBe(400);
      expect(asked).toEqual([['verifyBackup', 'ab']]);
    });

    it('tells the observer of each answered request by method, and not of unknown methods', async () => {
      observed.length = 0;
      await call(socket2(), 'VolumeDriver.Path', { Name: 'ab' });
      await call(socket2(), 'VolumeDriver.Get', { Name: '!' });
      await call(socket2(), 'Made.Up', {});
      expect(observed.map(([m, , failed]) => [m, failed])).toEqual([
        ['VolumeDriver.Path', false],
        ['VolumeDriver.Get', true],
      ]);
      expect(observed.every(([, seconds]) => seconds >= 0 && seconds < 10)).toBe(true);
    });
  });
});

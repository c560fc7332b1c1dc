import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLoopvol } from '../helpers/int-process.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { BIN, type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';
import { startZooKeeper, type ZooKeeper } from '../helpers/zookeeper.js';

const SECRET = 'loopvol:a-long-secret';

/** A plain ZooKeeper client, as anyone who reaches the ensemble has; `auth`: with loopvol's secret. */
async function client(zk: ZooKeeper, auth?: string): Promise<Client> {
  const c = zookeeper.createClient(`127.0.0.1:${zk.port}`, { sessionTimeout: 5_000 });
  if (auth) c.addAuthInfo('digest', Buffer.from(auth));
  const connected = new Promise<void>((resolve) => c.once('connected', () => resolve()));
  c.connect();
  await connected;
  return c;
}

/** Resolves with the ZooKeeper error's name (NO_AUTH, ...) or 'OK'. */
function outcome(op: (done: (err: unknown) => void) => void): Promise<string> {
  return new Promise((resolve) =>
    op((err) => resolve(err ? String((err as { name?: string }).name ?? err) : 'OK')),
  );
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'java']))(
  'ZooKeeper access control: only loopvol moves ownership; bad node data is refused by name',
  () => {
    let shared = '';
    let zk: ZooKeeper;
    let authFile = '';
    const cases = pluginCases();
    const clients: Client[] = [];

    beforeAll(async () => {
      shared = await makeTempDir('access');
      zk = await startZooKeeper(shared);
      authFile = join(shared, 'zk-auth');
      await writeFile(authFile, `${SECRET}\n`, { mode: 0o600 });
    }, 60_000);
    afterAll(async () => {
      for (const c of clients.splice(0)) c.close();
      await zk?.stop();
      if (shared) await cleanupTempDir(shared);
    });

    const args = (id: string, path: string) => [
      '--spares',
      '0',
      '--cluster',
      zk.url(path),
      '--cluster-timeout',
      '3',
      '--node-id',
      id,
      '--cluster-auth-file',
      authFile,
    ];

    async function agent(dir: string, id: string, path: string): Promise<PluginProcess> {
      const p = await cases.start({
        socket: join(dir, `${id}.sock`),
        dataRoot: join(dir, id),
        args: args(id, path),
      });
      await p.waitForLog(/"msg":"joined the cluster"/, 20_000);
      return p;
    }

    it("a client without the secret can neither change nor delete loopvol's nodes", async () => {
      const dir = await cases.begin('access-acl');
      const a = await agent(dir, 'agent-a', '/acl');
      expect((await a.call('VolumeDriver.Create', { Name: 'pg', Opts: { size: '64M' } })).status).toBe(200);
      const anyone = await client(zk);
      clients.push(anyone);
      const forged = Buffer.from(JSON.stringify({ owner: 'mallory', since: 'now', generation: 9 }));
      expect(await outcome((done) => anyone.setData('/acl/volumes/pg', forged, -1, done))).toBe('NO_AUTH');
      expect(await outcome((done) => anyone.remove('/acl/volumes/pg', -1, done))).toBe('NO_AUTH');
      expect(await outcome((done) => anyone.remove('/acl/agents/agent-a', -1, done))).toBe('NO_AUTH');
      expect(await outcome((done) => anyone.create('/acl/volumes/other', forged, done))).toBe('NO_AUTH');
      // Nothing moved: A still owns and mounts pg.
      expect((await a.call('VolumeDriver.Mount', { Name: 'pg', ID: 'c'.repeat(64) })).status).toBe(200);
      expect((await a.call('Loopvol.Cluster', {})).body.Volumes).toEqual([
        { name: 'pg', owner: 'agent-a', ownerAlive: true },
      ]);
    });

    it('garbage in a volume node gives a clear error naming the node, not a 500', async () => {
      const dir = await cases.begin('access-garbage');
      const a = await agent(dir, 'agent-a', '/garbage');
      expect((await a.call('VolumeDriver.Create', { Name: 'pg', Opts: { size: '64M' } })).status).toBe(200);
      // Someone with the secret (or ZooKeeper's superuser) writes garbage.
      const admin = await client(zk, SECRET);
      clients.push(admin);
      const garbage = Buffer.from('{"owner": 42');
      expect(await outcome((done) => admin.setData('/garbage/volumes/pg', garbage, -1, done))).toBe('OK');
      const mount = await a.call('VolumeDriver.Mount', { Name: 'pg', ID: 'c'.repeat(64) });
      expect(mount.status).toBe(409);
      expect(mount.body.Err).toMatch(
        /^ZooKeeper node \/garbage\/volumes\/pg does not hold a volume's ownership/,
      );
      const listed = await a.call('Loopvol.Cluster', {});
      expect(listed.status).toBe(409);
      expect(listed.body.Err).toMatch(/ZooKeeper node \/garbage\/volumes\/pg/);
      const b = await agent(dir, 'agent-b', '/garbage');
      const create = await b.call('VolumeDriver.Create', { Name: 'pg', Opts: {} });
      expect(create.status).toBe(409);
      expect(create.body.Err).toMatch(/ZooKeeper node \/garbage\/volumes\/pg does not hold/);
    });

    it("doctor checks the auth file, that loopvol's identity reads the root, and that the root is not open", async () => {
      const dir = await cases.begin('access-doctor');
      const a = await agent(dir, 'agent-a', '/doctored');
      expect((await a.call('VolumeDriver.Create', { Name: 'pg', Opts: { size: '64M' } })).status).toBe(200);
      // An agent without the secret made /open: its nodes are open to every client.
      const open = await cases.start({
        socket: join(dir, 'open.sock'),
        dataRoot: join(dir, 'open'),
        args: args('agent-open', '/open').slice(0, -2),
      });
      await open.waitForLog(/"msg":"joined the cluster"/, 20_000);
      const doctor = async (path: string, auth: string) => {
        const run = await execa(
          process.execPath,
          [BIN, 'doctor', '--json', '--data-root', join(dir, 'agent-a')],
          {
            env: { LOOPVOL_CLUSTER: zk.url(path), LOOPVOL_CLUSTER_AUTH_FILE: auth },
            reject: false,
          },
        );
        return (JSON.parse(run.stdout) as { subject: string; status: string; detail: string }[]).filter((f) =>
          f.subject.startsWith('cluster'),
        );
      };
      expect(await doctor('/doctored', authFile)).toEqual([
        expect.objectContaining({ subject: 'cluster auth', status: 'ok' }),
        { subject: 'cluster', status: 'ok', detail: 'reads /doctored (1 volumes)' },
      ]);
      expect(await doctor('/open', authFile)).toContainEqual(
        expect.objectContaining({ subject: 'cluster ACL', status: 'fail' }),
      );
      const loose = join(dir, 'loose');
      await writeFile(loose, `${SECRET}\n`, { mode: 0o644 });
      await chmod(loose, 0o644);
      expect(await doctor('/doctored', loose)).toEqual([
        expect.objectContaining({
          subject: 'cluster auth',
          status: 'fail',
          detail: expect.stringMatching(/chmod 600/),
        }),
      ]);
    });

    it('refuses an auth file other users can read', async () => {
      const dir = await cases.begin('access-mode');
      const loose = join(dir, 'loose');
      await writeFile(loose, `${SECRET}\n`);
      await chmod(loose, 0o644);
      const run = await runLoopvol([
        'serve',
        '--socket',
        join(dir, 'x.sock'),
        '--data-root',
        join(dir, 'root'),
        ...args('agent-x', '/mode').slice(0, -1),
        loose,
      ]);
      expect(run.code).not.toBe(0);
      expect(run.output).toMatch(
        /--cluster-auth-file .*loose is readable by other users \(mode 644\): chmod 600 it/,
      );
    });
  },
);

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import zookeeper, { type Client } from 'node-zookeeper-client';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/cluster.js';
import { type CopyState, writeCopy } from '../../src/cluster/ownership.js';
import { Layout } from '../../src/state/layout.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { storageAvailable } from '../helpers/tools.js';
import { startZooKeeper, type ZooKeeper } from '../helpers/zookeeper.js';

const silent = pino({ level: 'silent' });

/** A Cluster (the daemon's guard) on its own root, without a daemon: no volume is mounted. */
async function agent(
  connectString: string,
  dir: string,
  root: string,
  timeoutMs: number,
  copies: Record<string, CopyState> = {},
  log = silent,
) {
  const layout = new Layout(join(dir, root, 'data'), join(dir, root, 'mnt'));
  for (const [name, copy] of Object.entries(copies)) {
    await mkdir(layout.volume(name).dir, { recursive: true });
    await writeCopy(layout.volume(name).dir, copy);
  }
  const cluster = await Cluster.create(
    { connectString, root: `/${root}`, nodeId: 'a', timeoutMs, restoreMissing: false },
    layout,
    log,
  );
  await cluster.startUp(() => Object.keys(copies), log);
  return cluster;
}

/** A plain client, to change the nodes behind the agent's back. */
async function rawClient(port: number): Promise<Client> {
  const client = zookeeper.createClient(`127.0.0.1:${port}`);
  const connected = new Promise((resolve) => client.once('connected', () => resolve(undefined)));
  client.connect();
  await connected;
  return client;
}

const op = <T>(run: (done: (err: unknown, value?: T) => void) => void) =>
  new Promise<T>((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value as T))));

/** Waits (up to `ms`) until `check` resolves true. */
async function until(check: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const fenced = (kind: 'lost' | 'stale'): CopyState => ({
  generation: 2,
  fenced: { at: new Date().toISOString(), reason: `${kind} in a test`, kind },
});

describe.runIf(storageAvailable(['java']))('the cluster guard against real ZooKeeper', () => {
  let dir: string;
  let zk: ZooKeeper;
  let raw: Client;
  let proxy: TcpProxy | undefined;
  const clusters: Cluster[] = [];

  beforeAll(async () => {
    dir = await makeTempDir('loopvol-guard');
    zk = await startZooKeeper(dir, { maxSessionTimeout: '2000' });
    raw = await rawClient(zk.port);
  }, 60_000);

  afterAll(async () => {
    for (const cluster of clusters) cluster.close();
    raw?.close();
    await proxy?.close();
    await zk?.stop();
    if (dir) await cleanupTempDir(dir);
  });

  it('a fenced copy whose node disappeared is not served again, stale or not; its node is not recreated', async () => {
    const cluster = await agent(`127.0.0.1:${zk.port}`, dir, 'gone', 2_000, {
      stale: fenced('stale'),
      lost: fenced('lost'),
    });
    clusters.push(cluster);
    await expect(cluster.checkMount('stale', silent)).rejects.toThrow(/fenced .*not served again/);
    await expect(cluster.checkMount('lost', silent)).rejects.toThrow(/fenced .*not served again/);
    expect(await op((done) => raw.exists('/gone/volumes/stale', done))).toBeFalsy();
    expect(cluster.statusOf('stale')).toMatchObject({ fenced: { kind: 'stale' } });
  });

  it('a copy fenced after a lost session is revived while its node names this agent at its generation; a stale one never', async () => {
    const node = (generation: number) =>
      Buffer.from(JSON.stringify({ owner: 'a', since: new Date().toISOString(), generation }));
    await op((done) => raw.mkdirp('/same/volumes', done));
    await op((done) => raw.create('/same/volumes/lost', node(2), done));
    await op((done) => raw.create('/same/volumes/stale', node(2), done));
    const cluster = await agent(`127.0.0.1:${zk.port}`, dir, 'same', 2_000, {
      stale: fenced('stale'),
      lost: fenced('lost'),
    });
    clusters.push(cluster);
    await expect(cluster.checkMount('lost', silent)).resolves.toBeUndefined();
    expect(() => cluster.confirmMounted('lost')).not.toThrow();
    await expect(cluster.checkMount('stale', silent)).rejects.toThrow(/never served again/);
    expect(() => cluster.confirmMounted('stale')).toThrow(/fenced while it was being mounted/);
  });

  it('a shorter negotiated session timeout is logged and the fence runs on it', async () => {
    const lines: { msg: string }[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const cluster = await agent(`127.0.0.1:${zk.port}`, dir, 'short', 30_000, {}, log);
    clusters.push(cluster);
    expect(lines.map((l) => l.msg).join('\n')).toMatch(
      /granted a session timeout of 2000 ms, shorter than --cluster-timeout 30000 ms/,
    );
    // Its agent node deleted: the probe fails, so the fence counts silence on 2 s, not 30 s.
    await until(
      () => op<boolean>((done) => raw.exists('/short/agents/a', (e, s) => done(e, Boolean(s)))),
      5_000,
    );
    await op((done) => raw.remove('/short/agents/a', -1, done));
    await until(() => !cluster.writable('x'), 6_000);
  });

  it('after its session is lost, what it confirmed no longer mounts while ZooKeeper is unreachable', async () => {
    proxy = await startTcpProxy(zk.port);
    const cluster = await agent(`127.0.0.1:${proxy.port}`, dir, 'confirmed', 2_000);
    clusters.push(cluster);
    await cluster.claimForCreate('b', true, silent);
    // The agent node goes (as when the session is lost): the fence freezes, then loses the session.
    await op((done) => raw.remove('/confirmed/agents/a', -1, done));
    await until(() => !cluster.writable('b'), 6_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // past T: lost
    // Heard again (its node back): live, but the old confirmation is gone.
    await op((done) =>
      raw.create('/confirmed/agents/a', Buffer.alloc(0), zookeeper.CreateMode.EPHEMERAL, done),
    );
    await until(() => cluster.writable('none'), 6_000);
    proxy.cut();
    await expect(cluster.checkMount('b', silent)).rejects.toThrow(/unreachable|did not answer/);
    proxy.heal();
  });
});

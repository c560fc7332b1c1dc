import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAndMount, ok } from '../helpers/calls.js';
import {
  type ClusterBackdrop,
  startAgent,
  startClusterBackdrop,
  stopClusterBackdrop,
} from '../helpers/cluster.js';
import { type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { storageAvailable } from '../helpers/tools.js';
import { startWriter, type Writer } from '../helpers/writer.js';

const ID = 'c'.repeat(64);
/** The agents' ZooKeeper session timeout, in seconds. */
const TIMEOUT_S = 3;

/** Create then Mount: the mountpoint. */
const mount = (p: PluginProcess, name: string, opts: object = { size: '64M' }) =>
  createAndMount(p, name, opts, ID);

/** When the daemon first logged a line matching `pattern` (pino's epoch ms). */
function loggedAt(p: PluginProcess, pattern: RegExp): number {
  const line = p
    .logs()
    .split('\n')
    .find((l) => pattern.test(l));
  if (!line) throw new Error(`no log line matched ${pattern}`);
  return (JSON.parse(line) as { time: number }).time;
}

/** The copy's record beside the image: its generation, and the fence. */
async function copyRecord(p: PluginProcess, name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(p.dataRoot, 'volumes', name, 'cluster.json'), 'utf8'));
}

/** B takes the volume over (Create, as dvdcli and dockerd do) once A's session has expired. */
async function takeOver(b: PluginProcess, name: string, opts: object = {}): Promise<void> {
  await expect
    .poll(async () => (await b.call('VolumeDriver.Create', { Name: name, Opts: opts })).raw, {
      timeout: 60_000,
      interval: 500,
    })
    .toBe('{}');
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'restic', 'java']))(
  'self-fencing: an agent cut off, paused or restarted never writes a volume another agent took over',
  () => {
    let backdrop: ClusterBackdrop;
    const cases = pluginCases();
    const cleanups: (() => Promise<void>)[] = [];

    beforeAll(async () => {
      backdrop = await startClusterBackdrop('fencing');
    }, 60_000);
    // Registered after pluginCases: runs before its cleanup, which needs the mounts unused.
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });
    afterAll(() => stopClusterBackdrop(backdrop));

    /** Starts an agent without waiting for it to join; `port`: reach ZooKeeper there (a proxy). */
    const start = (
      dir: string,
      id: string,
      path: string,
      port?: number,
      timeoutS = TIMEOUT_S,
      env: Record<string, string> = {},
    ) => startAgent(cases.start, backdrop, { dir, id, path, port, timeoutS, env, join: false });

    /** Starts an agent and waits until it has joined the cluster. */
    const agent = (dir: string, id: string, path: string, port?: number, timeoutS = TIMEOUT_S) =>
      startAgent(cases.start, backdrop, { dir, id, path, port, timeoutS });

    /** A writer on A's volume, killed after the test (it holds the mount). */
    async function writerOn(mountPoint: string): Promise<Writer> {
      const writer = await startWriter(join(mountPoint, 'wal'));
      cleanups.push(() => writer.stop());
      return writer;
    }

    it('a partition: A freezes, then shuts its copy down before B takes over; healed, A never serves it', async () => {
      const dir = await cases.begin('fencing-partition');
      const proxy: TcpProxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      const a = await agent(dir, 'agent-a', '/partition', proxy.port);
      const b = await agent(dir, 'agent-b', '/partition');
      const mountA = await mount(a, 'pg');
      const rows = randomBytes(1024 * 1024);
      await writeFile(join(mountA, 'rows'), rows);
      await ok(a, 'Loopvol.Backup', { Name: 'pg' });
      expect((await ok(a, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-a', generation: 1 } },
      });
      const writer = await writerOn(mountA);

      const cut = Date.now();
      proxy.cut();
      await a.waitForLog(/froze the volume/, 10_000);
      // The writer blocks on the freeze, then fails once A takes its session as lost.
      const failure = await writer.failed();
      expect(failure.code).toBe('EIO');
      await takeOver(b, 'pg');
      const tookOver = loggedAt(b, /took over a volume whose agent is gone/);
      // Safety: A's last durable write came before B owned the volume.
      expect(Math.max(...writer.writes())).toBeLessThan(tookOver);
      const mountB = String((await ok(b, 'VolumeDriver.Mount', { Name: 'pg', ID })).Mountpoint);
      expect(Buffer.compare(await readFile(join(mountB, 'rows')), rows)).toBe(0);
      expect((await ok(b, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-b', generation: 2 } },
      });
      // Nor can anything else write on A's copy: its filesystem is shut down.
      await expect(appendFile(join(mountA, 'late'), 'x')).rejects.toMatchObject({ code: 'EIO' });
      expect(existsSync(join(a.dataRoot, 'volumes', 'pg', 'disk.img'))).toBe(true);
      expect(await copyRecord(a, 'pg')).toMatchObject({
        generation: 1,
        fenced: { reason: expect.any(String) },
      });

      const healed = Date.now();
      proxy.heal();
      await a.waitForLog(/ZooKeeper answers again/, 20_000);
      let refusal = '';
      await expect
        .poll(
          async () => {
            refusal = (await a.call('VolumeDriver.Mount', { Name: 'pg', ID: 'd'.repeat(64) })).raw;
            return refusal;
          },
          { timeout: 20_000, interval: 500 },
        )
        .toMatch(/volume pg now lives on agent agent-b: this agent's copy is stale/);
      const refused = Date.now();
      expect((await ok(a, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { stale: true, owner: 'agent-b', fenced: { reason: expect.any(String) } } },
      });
      const transcript = process.env.LOOPVOL_PARTITION_TRANSCRIPT;
      if (transcript) {
        const at = (t: number) => `+${((t - cut) / 1000).toFixed(3)} s  ${new Date(t).toISOString()}`;
        await writeFile(
          transcript,
          [
            `partition test, session timeout ${TIMEOUT_S} s (freeze at 1/3, shutdown at the timeout, takeover margin 1/2)`,
            `${at(cut)}  proxy cut (agent-a cannot reach ZooKeeper)`,
            `${at(Math.max(...writer.writes()))}  writer on agent-a: last durable write`,
            `${at(loggedAt(a, /froze the volume/))}  agent-a froze pg (writers block)`,
            `${at(loggedAt(a, /ZooKeeper session lost/))}  agent-a takes its session as lost`,
            `${at(loggedAt(a, /shut the volume down/))}  agent-a shut pg down (EXT4_IOC_SHUTDOWN)`,
            `${at(failure.at)}  writer on agent-a: first error ${failure.code}`,
            `${at(loggedAt(b, /waiting out its self-fencing margin/))}  agent-b sees agent-a's session expired, waits the margin`,
            `${at(tookOver)}  agent-b took pg over (generation 2)`,
            `${at(healed)}  proxy healed`,
            `${at(loggedAt(a, /ZooKeeper answers again/))}  agent-a hears from ZooKeeper again (new session)`,
            `${at(refused)}  agent-a refuses to mount pg: ${refusal}`,
            '',
          ].join('\n'),
        );
      }
    });

    it('a cut shorter than the timeout: the volume freezes, then thaws; the writer only waited', async () => {
      const dir = await cases.begin('fencing-blip');
      const proxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      // A longer timeout: the heal must come well before it.
      const a = await agent(dir, 'agent-a', '/blip', proxy.port, 6);
      const mountA = await mount(a, 'pg');
      const writer = await writerOn(mountA);
      proxy.cut();
      await a.waitForLog(/froze the volume/, 10_000);
      proxy.heal();
      await a.waitForLog(/thawed the volume: ZooKeeper answers and it is still ours/, 10_000);
      const thawed = loggedAt(a, /thawed the volume/);
      await expect.poll(() => Math.max(...writer.writes()), { timeout: 10_000 }).toBeGreaterThan(thawed);
      expect(writer.failure()).toBeUndefined();
      expect(a.logs()).not.toMatch(/shut the volume down/);
      expect((await ok(a, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-a', generation: 1 } },
      });
    });

    it('restarted while ZooKeeper is out of reach: held volumes stay frozen until it tells they are still ours', async () => {
      const dir = await cases.begin('fencing-blind-start');
      const proxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      const a = await agent(dir, 'agent-a', '/blind', proxy.port);
      const mountA = await mount(a, 'pg');
      const writer = await writerOn(mountA);
      await a.kill();
      proxy.cut();
      const back = await start(dir, 'agent-a', '/blind', proxy.port);
      // Start-up gave up waiting for ZooKeeper: it froze what is mounted, and answers.
      expect((await ok(back, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-a' } },
      });
      await back.waitForLog(/froze the volume/);
      const refused = await back.call('VolumeDriver.Mount', { Name: 'pg', ID: 'd'.repeat(64) });
      expect(refused.body.Err).toMatch(/ZooKeeper has not answered/);
      proxy.heal();
      await back.waitForLog(/thawed the volume: ZooKeeper answers and it is still ours/, 20_000);
      const thawed = loggedAt(back, /thawed the volume/);
      await expect.poll(() => Math.max(...writer.writes()), { timeout: 10_000 }).toBeGreaterThan(thawed);
      expect(writer.failure()).toBeUndefined();
    });

    /** A's volume with a writer on it, frozen by A's fence (cut from ZooKeeper), then A killed. */
    async function killedWhileFrozen(dir: string, path: string, proxy: TcpProxy) {
      const a = await agent(dir, 'agent-a', path, proxy.port, 6);
      const writer = await writerOn(await mount(a, 'pg'));
      proxy.cut();
      await a.waitForLog(/froze the volume/, 10_000);
      await a.kill();
      return writer;
    }

    it('killed while its fence held a volume frozen, restarted with ZooKeeper: thaws the copy still its own', async () => {
      const dir = await cases.begin('fencing-frozen-restart');
      const proxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      const writer = await killedWhileFrozen(dir, '/frozen-restart', proxy);
      proxy.heal();
      const back = await start(dir, 'agent-a', '/frozen-restart', proxy.port, 6);
      const answered = Date.now();
      expect((await ok(back, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-a', generation: 1 } },
      });
      await expect.poll(() => Math.max(...writer.writes()), { timeout: 10_000 }).toBeGreaterThan(answered);
      expect(writer.failure()).toBeUndefined();
    });

    it('killed while frozen and restarted without ZooKeeper: the new fence takes the freeze over and thaws it once ZooKeeper answers', async () => {
      const dir = await cases.begin('fencing-frozen-blind');
      const proxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      const writer = await killedWhileFrozen(dir, '/frozen-blind', proxy);
      const back = await start(dir, 'agent-a', '/frozen-blind', proxy.port, 6);
      await ok(back, 'VolumeDriver.Get', { Name: 'pg' });
      proxy.heal();
      await back.waitForLog(/thawed the volume: ZooKeeper answers and it is still ours/, 20_000);
      const thawed = loggedAt(back, /thawed the volume/);
      await expect.poll(() => Math.max(...writer.writes()), { timeout: 10_000 }).toBeGreaterThan(thawed);
      expect(writer.failure()).toBeUndefined();
    });

    it('restarted without ZooKeeper after a crash mid-snapshot: the volume stays frozen until ZooKeeper says it is ours', async () => {
      const dir = await cases.begin('fencing-snapshot-crash');
      const proxy = await startTcpProxy(backdrop.zk.port);
      cleanups.push(() => proxy.close());
      const a = await agent(dir, 'agent-a', '/snapshot-crash', proxy.port, 6);
      const writer = await writerOn(await mount(a, 'pg'));
      await a.kill();
      const doomed = await start(dir, 'agent-a', '/snapshot-crash', proxy.port, 6, {
        LOOPVOL_CRASH_AT: 'snapshot:frozen',
      });
      await doomed.waitForLog(/"msg":"joined the cluster"/, 20_000);
      const exited = once(doomed.child, 'exit');
      await expect(doomed.call('Loopvol.SnapshotCreate', { Name: 'pg', Snapshot: 's1' })).rejects.toThrow();
      await exited;
      const crashed = Date.now();
      proxy.cut();
      const back = await start(dir, 'agent-a', '/snapshot-crash', proxy.port, 6);
      // Start-up is over (it answers): the snapshot's freeze was not undone before the fence decided.
      await ok(back, 'VolumeDriver.Get', { Name: 'pg' });
      expect(Math.max(...writer.writes())).toBeLessThan(crashed);
      proxy.heal();
      await back.waitForLog(/thawed the volume: ZooKeeper answers and it is still ours/, 20_000);
      await expect.poll(() => Math.max(...writer.writes()), { timeout: 10_000 }).toBeGreaterThan(crashed);
      expect(writer.failure()).toBeUndefined();
    });

    it('a paused agent (SIGSTOP past the timeout) fences itself first thing when it wakes', async () => {
      const dir = await cases.begin('fencing-pause');
      const a = await agent(dir, 'agent-a', '/pause');
      const b = await agent(dir, 'agent-b', '/pause');
      // xfs here (XFS_IOC_GOINGDOWN), ext4 in the other cases (EXT4_IOC_SHUTDOWN).
      const mountA = await mount(a, 'pg', { size: '320M', fs: 'xfs' });
      // The whole host stalls: the agent and the database on it.
      const writer = await writerOn(mountA);
      a.child.kill('SIGSTOP');
      writer.child.kill('SIGSTOP');
      try {
        // Created empty on B: a restore would mount a second xfs of the same UUID on this one host.
        await takeOver(b, 'pg', { fresh: 'true', size: '320M', fs: 'xfs' });
      } finally {
        a.child.kill('SIGCONT');
      }
      await a.waitForLog(/shut the volume down/, 10_000);
      writer.child.kill('SIGCONT');
      expect((await writer.failed()).code).toBe('EIO');
      expect(Math.max(...writer.writes())).toBeLessThan(
        loggedAt(b, /took over a volume whose agent is gone/),
      );
      // The fence is recorded just after the shutdown is logged.
      await expect
        .poll(() => copyRecord(a, 'pg'), { timeout: 10_000, interval: 200 })
        .toMatchObject({ generation: 1, fenced: { reason: expect.any(String) } });
      await expect
        .poll(async () => (await a.call('VolumeDriver.Mount', { Name: 'pg', ID: 'd'.repeat(64) })).raw, {
          timeout: 20_000,
          interval: 500,
        })
        .toMatch(/volume pg now lives on agent agent-b: this agent's copy is stale/);
    });

    it('a killed agent restarted after a takeover shuts its still-held copy down before it answers', async () => {
      const dir = await cases.begin('fencing-restart');
      const a = await agent(dir, 'agent-a', '/restart');
      const b = await agent(dir, 'agent-b', '/restart');
      const mountA = await mount(a, 'pg');
      await writeFile(join(mountA, 'rows'), 'before the crash');
      await ok(a, 'Loopvol.Backup', { Name: 'pg' });
      const holder = await writerOn(mountA);
      await a.kill();
      await takeOver(b, 'pg');
      const back = await start(dir, 'agent-a', '/restart');
      // The first answer about volumes waits for start-up, which shut the held copy down.
      expect((await ok(back, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { stale: true, owner: 'agent-b' } },
      });
      await expect(appendFile(join(mountA, 'late'), 'x')).rejects.toMatchObject({ code: 'EIO' });
      expect((await holder.failed()).code).toBe('EIO');
      const refused = await back.call('VolumeDriver.Mount', { Name: 'pg', ID: 'd'.repeat(64) });
      expect(refused.body.Err).toMatch(/volume pg now lives on agent agent-b: this agent's copy is stale/);
      // Once more, with the shut down mount still held: start-up passes it by.
      await back.kill();
      const again = await start(dir, 'agent-a', '/restart');
      expect((await ok(again, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { stale: true, owner: 'agent-b' } },
      });
    });
  },
);

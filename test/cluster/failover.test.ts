import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndMount, ok, sha } from '../helpers/calls.js';
import {
  agentGone,
  type ClusterBackdrop,
  startAgent,
  startClusterBackdrop,
  stopClusterBackdrop,
} from '../helpers/cluster.js';
import { removeAllContainers, runAll, runContainer, startDockerEnv } from '../helpers/dockerd.js';
import { BIN, type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;

const ID = 'c'.repeat(64);
/** The agents' ZooKeeper session timeout, in seconds: how long a dead agent keeps its volumes. */
const TIMEOUT_S = 2;

/** Create then Mount: the mountpoint. */
const mount = (p: PluginProcess, name: string, opts: object = {}) => createAndMount(p, name, opts, ID);

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'restic', 'java', 'dockerd']))(
  'volumes that follow their task: ownership in a real ZooKeeper',
  () => {
    let backdrop: ClusterBackdrop;
    const cases = pluginCases();

    beforeAll(async () => {
      backdrop = await startClusterBackdrop('cluster');
    }, 60_000);
    afterAll(() => stopClusterBackdrop(backdrop));

    /** Each agent: its own data root and socket in the test's dir, one ZooKeeper path per test. */
    const agent = (dir: string, id: string, path: string, env: Record<string, string> = {}) =>
      startAgent(cases.start, backdrop, { dir, id, path, timeoutS: TIMEOUT_S, env });

    it('fails over from a dead agent to a live one from the backup; the old copy comes back stale', async () => {
      const dir = await cases.begin('cluster-failover');
      const a = await agent(dir, 'agent-a', '/failover');
      const b = await agent(dir, 'agent-b', '/failover');
      const mountA = await mount(a, 'pg');
      const rows = randomBytes(4 * 1024 * 1024);
      await writeFile(join(mountA, 'rows'), rows);
      await ok(a, 'Loopvol.Backup', { Name: 'pg' });

      // While A lives, B may not have pg.
      const refused = await b.call('VolumeDriver.Create', { Name: 'pg', Opts: {} });
      expect(refused.status).toBe(409);
      expect(refused.body.Err).toMatch(/volume pg lives on agent agent-a, which is alive/);

      await a.kill();
      await agentGone(backdrop, '/failover', 'agent-a');
      // As the Mesos isolator on agent B calls it: dvdcli finds B's socket (agent-b.sock) by name.
      const dvdcli = (...args: string[]) =>
        execa(process.execPath, [DVDCLI, ...args, '--volumedriver=agent-b', '--volumename=pg'], {
          env: { LOOPVOL_PLUGIN_SOCKETS_DIR: dir },
        });
      const mountB = (await dvdcli('mount')).stdout;
      expect(sha(await readFile(join(mountB, 'rows')))).toBe(sha(rows));
      expect((await ok(b, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { owner: 'agent-b' } },
      });
      const listed = (await ok(b, 'Loopvol.Cluster', {})).Volumes;
      expect(listed).toEqual([{ name: 'pg', owner: 'agent-b', ownerAlive: true }]);
      const table = await execa(process.execPath, [BIN, 'ls', '--cluster', '--socket', b.socket]);
      expect(table.stdout).toMatch(/^ pg\s+agent-b\s+yes\s+\S+Z \([0-9a-f]{8}\)/m);

      // A comes back: its copy is stale, kept intact, and never mounted again.
      const back = await agent(dir, 'agent-a', '/failover');
      const stale = await back.call('VolumeDriver.Mount', { Name: 'pg', ID: 'd'.repeat(64) });
      expect(stale.status).toBe(409);
      expect(stale.body.Err).toMatch(/volume pg now lives on agent agent-b: this agent's copy is stale/);
      expect(existsSync(join(dir, 'agent-a', 'volumes', 'pg', 'disk.img'))).toBe(true);
      expect((await ok(back, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
        Status: { cluster: { stale: true, owner: 'agent-b' } },
      });
      await back.waitForLog(/this copy of volume pg is stale: the volume now lives on agent agent-b/);
      // Nor backed up: only the owner backs a volume up, so the stale copy's data never reaches the repository.
      const before = ((await ok(b, 'Loopvol.Backups', { Name: 'pg' })).Backups as unknown[]).length;
      const backup = await back.call('Loopvol.Backup', { Name: 'pg' });
      expect(backup.status).toBe(409);
      expect(backup.body.Err).toMatch(/volume pg now lives on agent agent-b/);
      expect((await ok(b, 'Loopvol.Backups', { Name: 'pg' })).Backups).toHaveLength(before);
      await dvdcli('unmount');
    });

    it('an encrypted volume fails over to an agent with the same master key, which reads it', async () => {
      const dir = await cases.begin('cluster-encrypted');
      const key = join(dir, 'master.key');
      await writeFile(key, randomBytes(32), { mode: 0o600 });
      const env = { LOOPVOL_KEY_FILE: key };
      const a = await agent(dir, 'agent-a', '/encrypted', env);
      const b = await agent(dir, 'agent-b', '/encrypted', env);
      const rows = randomBytes(1024 * 1024);
      await writeFile(join(await mount(a, 'sec', { encrypt: 'true', size: '64M' }), 'rows'), rows);
      await ok(a, 'Loopvol.Backup', { Name: 'sec' });

      await a.kill();
      await agentGone(backdrop, '/encrypted', 'agent-a');
      // The takeover restores the image backup, which names the key; the new copy stays encrypted.
      const mountB = await mount(b, 'sec');
      expect(sha(await readFile(join(mountB, 'rows')))).toBe(sha(rows));
      expect((await ok(b, 'VolumeDriver.Get', { Name: 'sec' })).Volume).toMatchObject({
        Status: { encrypted: true, cluster: { owner: 'agent-b' } },
      });
      await ok(b, 'VolumeDriver.Unmount', { Name: 'sec', ID });
    });

    it('a takeover killed during its restore restores again when retried, never empty', async () => {
      const dir = await cases.begin('cluster-resume');
      const a = await agent(dir, 'agent-a', '/resume');
      const rows = randomBytes(1024 * 1024);
      await writeFile(join(await mount(a, 'pg'), 'rows'), rows);
      await ok(a, 'Loopvol.Backup', { Name: 'pg' });
      await a.kill();
      await agentGone(backdrop, '/resume', 'agent-a');
      // B claims pg (generation 2) and dies with the restore half done.
      const doomed = await agent(dir, 'agent-b', '/resume', { LOOPVOL_CRASH_AT: 'restore:mounted' });
      const exited = once(doomed.child, 'exit');
      await expect(doomed.call('VolumeDriver.Create', { Name: 'pg', Opts: {} })).rejects.toThrow();
      await exited;
      // Back, B owns the name but has no volume: the Create restores the backup again.
      const b = await agent(dir, 'agent-b', '/resume');
      let mounted: string;
      try {
        mounted = await mount(b, 'pg');
      } catch (err) {
        throw new Error(`${(err as Error).message}\nagent log:\n${b.logs()}`);
      }
      expect(sha(await readFile(join(mounted, 'rows')))).toBe(sha(rows));
      await ok(b, 'VolumeDriver.Unmount', { Name: 'pg', ID });
    });

    it("docker run --volume-driver on the next agent restores a dead agent's volume", async () => {
      const dir = await cases.begin('cluster-docker');
      const a = await agent(dir, 'agent-a', '/docker');
      const b = await agent(dir, 'agent-b', '/docker');
      const mountA = await mount(a, 'web');
      const page = randomBytes(1024 * 1024);
      await writeFile(join(mountA, 'page'), page);
      await ok(a, 'Loopvol.Backup', { Name: 'web' });
      await a.kill();
      await agentGone(backdrop, '/docker', 'agent-a');
      const env = await startDockerEnv(dir, b.socket);
      try {
        // The volume does not exist on B: dockerd's implicit Create restores it, then mounts it.
        const read = await runContainer(env.docker, 'sha256sum /data/page | cut -d" " -f1', {
          Binds: ['web:/data'],
          VolumeDriver: env.driver,
        });
        expect(read).toEqual({ exitCode: 0, output: `${sha(page)}\n` });
      } finally {
        await runAll([
          () => removeAllContainers(env.docker),
          () => env.dockerd.stop(),
          () => env.spec.remove(),
        ]);
      }
    });

    it('a name the cluster knows, whose owner is gone and which has no backup, is not created empty unless asked', async () => {
      const dir = await cases.begin('cluster-nobackup');
      const a = await agent(dir, 'agent-a', '/nobackup');
      const b = await agent(dir, 'agent-b', '/nobackup');
      await ok(a, 'VolumeDriver.Create', { Name: 'cache', Opts: { size: '64M' } });
      await a.kill();
      await agentGone(backdrop, '/nobackup', 'agent-a');
      const refused = await b.call('VolumeDriver.Create', { Name: 'cache', Opts: {} });
      expect(refused.body.Err).toMatch(/there is no backup of a volume named cache/);
      expect((await ok(b, 'VolumeDriver.List', {})).Volumes).toEqual([]);
      await ok(b, 'VolumeDriver.Create', { Name: 'cache', Opts: { fresh: 'true' } });
      expect((await ok(b, 'Loopvol.Cluster', {})).Volumes).toEqual([
        { name: 'cache', owner: 'agent-b', ownerAlive: true },
      ]);
    });

    it("two agents racing to take over a dead owner's volume: exactly one wins", async () => {
      const dir = await cases.begin('cluster-race');
      const a = await agent(dir, 'agent-a', '/race');
      const b = await agent(dir, 'agent-b', '/race');
      const c = await agent(dir, 'agent-c', '/race');
      await ok(a, 'VolumeDriver.Create', { Name: 'kafka', Opts: { size: '64M' } });
      await a.kill();
      await agentGone(backdrop, '/race', 'agent-a');
      const replies = await Promise.all(
        [b, c].map((p) => p.call('VolumeDriver.Create', { Name: 'kafka', Opts: { fresh: 'true' } })),
      );
      expect(replies.map((r) => r.status).sort()).toEqual([200, 409]);
      const winner = replies[0]?.status === 200 ? 'agent-b' : 'agent-c';
      expect(replies.find((r) => r.status === 409)?.body.Err).toMatch(new RegExp(`agent ${winner}`));
      expect((await ok(b, 'Loopvol.Cluster', {})).Volumes).toEqual([
        { name: 'kafka', owner: winner, ownerAlive: true },
      ]);
    });

    it('without ZooKeeper past the timeout the agent fences its volumes; back, a copy still its own mounts again', async () => {
      const dir = await cases.begin('cluster-zkdown');
      const b = await agent(dir, 'agent-b', '/zkdown');
      const mounted = await mount(b, 'live');
      await writeFile(join(mounted, 'before'), 'written');
      await backdrop.zk.stop();
      try {
        // B cannot tell an outage from a partition: it stops writing before anyone could take over.
        await b.waitForLog(/shut the volume down/, 20_000);
        await expect(writeFile(join(mounted, 'during-outage'), 'lost')).rejects.toMatchObject({
          code: 'EIO',
        });
        const refused = await b.call('VolumeDriver.Create', { Name: 'other', Opts: {} });
        expect(refused.body.Err).toMatch(/cannot create volume other: ZooKeeper has not answered for \d+ s/);
        const mount = await b.call('VolumeDriver.Mount', { Name: 'live', ID: 'e'.repeat(64) });
        expect(mount.body.Err).toMatch(/ZooKeeper has not answered/);
      } finally {
        await backdrop.zk.start();
      }
      // On failure, say what the agent answered and logged: a flake here is otherwise opaque.
      let last: unknown;
      try {
        await expect
          .poll(
            async () => {
              const reply = await b.call('VolumeDriver.Create', { Name: 'other', Opts: {} });
              last = reply.body;
              return reply.status;
            },
            { timeout: 30_000, interval: 500 },
          )
          .toBe(200);
      } catch (err) {
        throw new Error(
          `${(err as Error).message}; last reply ${JSON.stringify(last)}; agent log:\n${b.logs()}\nZooKeeper's log:\n${backdrop.zk.logTail(300)}`,
        );
      }
      // Nobody took it over: once its shut-down mount is gone, the copy mounts again.
      const held = await b.call('VolumeDriver.Mount', { Name: 'live', ID: 'e'.repeat(64) });
      expect(held.body.Err).toMatch(/volume live was fenced .* its shut-down mount is still in use/);
      await ok(b, 'VolumeDriver.Unmount', { Name: 'live', ID });
      const again = String((await ok(b, 'VolumeDriver.Mount', { Name: 'live', ID })).Mountpoint);
      expect(await readFile(join(again, 'before'), 'utf8')).toBe('written');
      await ok(b, 'VolumeDriver.Unmount', { Name: 'live', ID });
    });
  },
);

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { cleanupTempDir, makeTempDir } from './kernel.js';
import type { PluginProcess, StartOptions } from './plugin.js';
import { initRepository } from './restic-repo.js';
import { startZooKeeper, type ZooKeeper } from './zookeeper.js';

/** What the agents of a cluster test share: a temp dir, a real ZooKeeper and a restic repository. */
export interface ClusterBackdrop {
  dir: string;
  zk: ZooKeeper;
  repo: string;
  password: string;
}

/** Starts ZooKeeper (127.0.0.1, its data in the new temp dir) and makes the repository. */
export async function startClusterBackdrop(label: string): Promise<ClusterBackdrop> {
  const dir = await makeTempDir(label);
  const zk = await startZooKeeper(dir);
  const repo = join(dir, 'repo');
  const password = join(dir, 'password');
  await writeFile(password, 'cluster secret\n', { mode: 0o600 });
  await initRepository(repo, password);
  return { dir, zk, repo, password };
}

/** Stops ZooKeeper and deletes the backdrop's dir. */
export async function stopClusterBackdrop(backdrop: ClusterBackdrop | undefined): Promise<void> {
  if (!backdrop) return;
  await backdrop.zk.stop();
  // A restic run of a killed daemon may still be dropping its lock in the repository.
  await cleanupTempDir(backdrop.dir).catch(() =>
    new Promise((resolve) => setTimeout(resolve, 2_000)).then(() => cleanupTempDir(backdrop.dir)),
  );
}

/** One agent of a cluster test: its own data root and socket in the test's dir. */
export interface AgentOptions {
  dir: string;
  /** Its node id, and the name of its socket (`<id>.sock`) and data root. */
  id: string;
  /** Its ZooKeeper root: one per test, so tests do not see each other's volumes. */
  path: string;
  /** Its ZooKeeper session timeout, in seconds. */
  timeoutS: number;
  /** Where it reaches ZooKeeper: the backdrop's own port unless a proxy stands in between. */
  port?: number;
  env?: Record<string, string>;
  /** Wait until it has joined the cluster (the default); false for a start-up that cannot join. */
  join?: boolean;
}

/**
 * Starts a loopvol agent of the backdrop's cluster (with `start`, so the test's cleanup kills it),
 * restoring missing volumes from the backdrop's repository.
 */
export async function startAgent(
  start: (options: StartOptions) => Promise<PluginProcess>,
  backdrop: ClusterBackdrop,
  { dir, id, path, timeoutS, port = backdrop.zk.port, env = {}, join: waitToJoin = true }: AgentOptions,
): Promise<PluginProcess> {
  const p = await start({
    env,
    socket: join(dir, `${id}.sock`),
    dataRoot: join(dir, id),
    args: [
      '--spares',
      '0',
      '--cluster',
      `zk://127.0.0.1:${port}${path}`,
      '--cluster-timeout',
      String(timeoutS),
      '--node-id',
      id,
      '--restore-missing',
      '--backup-repo',
      backdrop.repo,
      '--backup-password-file',
      backdrop.password,
    ],
  });
  if (waitToJoin) await p.waitForLog(/"msg":"joined the cluster"/, 20_000);
  return p;
}

/**
 * Resolves once ZooKeeper has expired the session of the (killed or paused) agent `id` of the
 * cluster at `path`: its ephemeral node is gone, so other agents see it dead. Polls instead of
 * sleeping a fixed time past the session timeout.
 */
export async function agentGone(backdrop: ClusterBackdrop, path: string, id: string, timeoutMs = 30_000) {
  const client = zookeeper.createClient(`127.0.0.1:${backdrop.zk.port}`);
  const connected = new Promise<void>((resolve) => client.once('connected', () => resolve()));
  client.connect();
  try {
    await connected;
    const node = `${path}/agents/${id}`;
    const exists = () =>
      new Promise<boolean>((resolve, reject) =>
        client.exists(node, (err, stat) => (err ? reject(err) : resolve(Boolean(stat)))),
      );
    const deadline = Date.now() + timeoutMs;
    while (await exists()) {
      if (Date.now() > deadline) throw new Error(`ZooKeeper still has ${node} after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    client.close();
  }
}

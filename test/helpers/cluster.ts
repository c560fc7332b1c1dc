import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { makeTempDir } from './kernel.js';
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
  await execa('restic', ['init', '--repo', repo, '--password-file', password]);
  return { dir, zk, repo, password };
}

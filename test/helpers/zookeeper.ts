import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './net.js';

/** Debian's zookeeper package: the server's jar and its log configuration. */
const CLASSPATH = '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar';

/** A ZooKeeper server the test started on 127.0.0.1, with its own data dir. */
export interface ZooKeeper {
  port: number;
  url(path: string): string;
  /** Stops it (SIGTERM, then SIGKILL); start() brings it back with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Whether the server answers its "ruok" four-letter command. */
function ruok(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('ruok'));
    socket.on('data', (d) => {
      resolve(d.toString() === 'imok');
      socket.end();
    });
    socket.on('error', () => resolve(false));
  });
}

/** `settings` override zoo.cfg's lines (e.g. a small maxSessionTimeout). */
export async function startZooKeeper(dir: string, settings: Record<string, string> = {}): Promise<ZooKeeper> {
  const port = await freePort();
  const data = join(dir, 'zk-data');
  await mkdir(data, { recursive: true });
  const config = join(dir, 'zoo.cfg');
  await writeFile(
    config,
    Object.entries({
      tickTime: '500',
      dataDir: data,
      clientPort: String(port),
      clientPortAddress: '127.0.0.1',
      'admin.enableServer': 'false',
      minSessionTimeout: '1000',
      maxSessionTimeout: '60000',
      '4lw.commands.whitelist': 'ruok',
      ...settings,
    })
      .map(([key, value]) => `${key}=${value}`)
      .join('\n'),
  );
  let child: ChildProcess | undefined;
  const zk: ZooKeeper = {
    port,
    url: (path) => `zk://127.0.0.1:${port}${path}`,
    async start() {
      child = spawn(
        'java',
        [
          '-cp',
          CLASSPATH,
          `-Dzookeeper.log.dir=${dir}`,
          'org.apache.zookeeper.server.quorum.QuorumPeerMain',
          config,
        ],
        {
          stdio: 'ignore',
        },
      );
      const deadline = Date.now() + 30_000;
      while (!(await ruok(port))) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error('ZooKeeper did not start');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGTERM');
      const timer = setTimeout(() => running.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
  await zk.start();
  return zk;
}

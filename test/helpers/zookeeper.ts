import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { freePort } from './net.js';

/**
 * Debian's zookeeper package: the server's jar and its log configuration; plus, where Debian's
 * maven packages left them, an slf4j binding so that the server's log says what it did (without
 * one it logs nothing).
 */
const LOGGING = ['/usr/share/java/maven3-slf4j-provider.jar', '/usr/share/java/maven-shared-utils.jar'];
const CLASSPATH = [
  '/etc/zookeeper/conf',
  '/usr/share/java/zookeeper.jar',
  ...(LOGGING.every((jar) => existsSync(jar)) ? LOGGING : []),
].join(':');

/** A ZooKeeper server the test started on 127.0.0.1, with its own data dir. */
export interface ZooKeeper {
  port: number;
  url(path: string): string;
  /** Stops it (SIGTERM, then SIGKILL); start() brings it back with the same data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** The end of the server's own output (empty without an slf4j binding), for a failure's message. */
  logTail(lines?: number): string;
}

/** Whether a client gets a session within `ms` (a server may answer ruok before it serves them). */
function sessionWithin(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const client = zookeeper.createClient(`127.0.0.1:${port}`, { sessionTimeout: 4_000, spinDelay: 200 });
    const timer = setTimeout(() => {
      client.close();
      resolve(false);
    }, ms);
    client.once('connected', () => {
      clearTimeout(timer);
      client.close();
      resolve(true);
    });
    client.connect();
  });
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
  const log = join(dir, 'zookeeper.out');
  const zk: ZooKeeper = {
    port,
    url: (path) => `zk://127.0.0.1:${port}${path}`,
    async start() {
      const output = openSync(log, 'a');
      child = spawn(
        'java',
        [
          '-cp',
          CLASSPATH,
          `-Dzookeeper.log.dir=${dir}`,
          'org.apache.zookeeper.server.quorum.QuorumPeerMain',
          config,
        ],
        { stdio: ['ignore', output, output] },
      );
      closeSync(output); // the server holds its own copy
      const deadline = Date.now() + 30_000;
      while (!(await ruok(port)) || !(await sessionWithin(port, 2_000))) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`ZooKeeper did not start:\n${zk.logTail()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    logTail: (lines = 80) =>
      existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => !/^\s+at /.test(l)) // Java stack frames: the message lines say enough
            .slice(-lines)
            .join('\n')
        : '',
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

// Shared pieces of the benchmark sections: the daemon under test, a keep-alive client on its
// socket, the shell baseline, statistics, and cleanup of what a section left in the kernel.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { toolOps } from '../dist/system/kernel-ops.js';
import { listLoops } from '../dist/system/loop-sysfs.js';
import { readMounts } from '../dist/system/mountinfo.js';

export const BIN = process.env.LOOPVOL_BENCH_BIN ?? new URL('../bin/loopvol', import.meta.url).pathname;

export const now = () => performance.now();

/** p50, p99, p99.9 and mean of a list of milliseconds. */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return {
    n: s.length,
    p50: at(0.5),
    p99: at(0.99),
    p999: at(0.999),
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

/**
 * Starts `loopvol serve` on a socket and data root under `dir`; resolves once List answers.
 * `keepLog`: its info lines are kept (logLines reads them) instead of only warnings printed.
 */
export async function startDaemon(dir, args = [], { keepLog = false } = {}) {
  const socket = join(dir, 'bench.sock');
  const started = now();
  const level = keepLog ? 'info' : 'warn';
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--socket', socket, '--data-root', join(dir, 'root'), '--log-level', level, ...args],
    { stdio: ['ignore', keepLog ? 'pipe' : 'inherit', 'inherit'] },
  );
  let log = '';
  child.stdout?.on('data', (d) => {
    log += d.toString();
  });
  const client = connect(socket);
  for (;;) {
    try {
      await client.call('VolumeDriver.List', {});
      break;
    } catch (err) {
      if (child.exitCode !== null) throw new Error(`loopvol exited with ${child.exitCode}`);
      if (now() - started > 120_000) throw err;
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  return {
    ...client,
    socket,
    pid: child.pid,
    readyMs: now() - started,
    /** The fields of each kept log line whose msg is `msg`. */
    logLines: (msg) =>
      log
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .filter((l) => l.msg === msg),
    /** SIGKILL: the owner's death, for failover measurements. */
    async kill() {
      client.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await once(child, 'exit');
    },
    rssBytes: () =>
      Number(/VmRSS:\s+(\d+)/.exec(execFileSync('cat', [`/proc/${child.pid}/status`]).toString())?.[1]) *
      1024,
    async stop() {
      client.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/**
 * A client that keeps its connections alive, as dockerd does: one connection per request in
 * flight, reused. Minimal HTTP/1.1 (a POST out, a Content-Length answer back), because what is
 * measured is the daemon: dockerd's Go client costs microseconds, while Node's http client alone
 * added about 1.5 ms to the p99 of a no-op request on this kind of machine.
 */
export function connect(socket, { keepAlive = true } = {}) {
  const idle = [];
  const dial = () =>
    new Promise((resolve, reject) => {
      const s = createConnection(socket);
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        // A kept-alive connection the daemon closed (idle timeout, restart) leaves the pool.
        s.on('close', () => {
          if (idle.includes(s)) idle.splice(idle.indexOf(s), 1);
        });
        resolve(s);
      });
    });
  const exchange = (s, method, payload) =>
    new Promise((resolve, reject) => {
      let received = Buffer.alloc(0);
      const finish = (err, reply) => {
        s.off('data', onData);
        s.off('error', finish);
        s.off('close', onClose);
        if (err) {
          s.destroy();
          reject(err);
        } else resolve(reply);
      };
      const onClose = () => finish(new Error(`${method}: connection closed before the answer`));
      const onData = (chunk) => {
        received = Buffer.concat([received, chunk]);
        const headEnd = received.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const length = Number(
          /\r\ncontent-length: *(\d+)/i.exec(received.subarray(0, headEnd).toString())?.[1],
        );
        if (received.length < headEnd + 4 + length) return;
        finish(undefined, received.subarray(headEnd + 4, headEnd + 4 + length).toString());
      };
      s.on('data', onData);
      s.once('error', finish);
      s.once('close', onClose);
      s.write(
        `POST /${method} HTTP/1.1\r\nHost: plugin\r\nContent-Length: ${payload.length}\r\n` +
          `Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`,
      );
      s.write(payload);
    });
  const call = async (method, body) => {
    const s = idle.pop() ?? (await dial());
    const raw = await exchange(s, method, Buffer.from(JSON.stringify(body)));
    if (keepAlive && !s.destroyed) idle.push(s);
    else s.destroy();
    const reply = JSON.parse(raw);
    if (reply.Err) throw new Error(`${method}: ${reply.Err}`);
    return reply;
  };
  return {
    call,
    close: () => {
      for (const s of idle.splice(0)) s.destroy();
    },
  };
}

/**
 * The sequence an operator would script by hand for one volume's lifecycle, run by one shell:
 * the baseline loopvol is compared with, on paths under `dir`.
 */
export function shellLifecycle(dir, i) {
  const script = `set -e; truncate -s 1G "$1"; mkdir -p "$2"; dev=$(losetup --find --show --direct-io=on "$1")
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$dev"; mount "$dev" "$2"; umount "$2"
losetup -d "$dev"; rm -f "$1"; rmdir "$2"`;
  execFileSync('sh', ['-c', script, 'sh', join(dir, `shell-${i}.img`), join(dir, `shell-${i}`)]);
}

const below = (path, dir) => path === dir || path.startsWith(`${dir}/`);

/** Unmounts and detaches whatever is left under `dir` (a section that failed half-way), and only that. */
export async function releaseKernelState(dir) {
  const mounts = (await readMounts()).filter((m) => below(m.mountPoint, dir)).map((m) => m.mountPoint);
  for (const m of mounts.sort((a, b) => b.length - a.length)) await toolOps.unmount(m).catch(() => undefined);
  for (const l of await listLoops())
    if (below(l.backingFile, dir)) await toolOps.detachLoop(l.device).catch(() => undefined);
}

import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import Docker from 'dockerode';

// No vitest import here: the dockerfile project's global setup (dockerfile-build.ts) starts a
// dockerd too, and vitest's API is not available there.

/** A dockerd started by one test file, with everything it owns below `dir`. */
export interface Dockerd {
  dir: string;
  socket: string;
  logFile: string;
  child: ChildProcess;
  docker: Docker;
  /** The daemon's log so far (for failure reports). */
  log(): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; also ends its own containerd if dockerd left it behind. */
  stop(graceMs?: number): Promise<void>;
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.setTimeout(2_000, () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Starts a private dockerd: its data, exec root (kept short: containerd's sockets live there),
 * API socket and pidfile under `dir`, and no iptables, bridge or forwarding changes to the host.
 */
export async function startDockerd(
  dir: string,
  timeoutMs = 60_000,
  extraArgs: string[] = [],
): Promise<Dockerd> {
  const socket = join(dir, 'docker.sock');
  const logFile = join(dir, 'dockerd.log');
  const child = spawn(
    'dockerd',
    [
      '--data-root',
      join(dir, 'docker'),
      '--exec-root',
      join(dir, 'exec'),
      '-H',
      `unix://${socket}`,
      '--pidfile',
      join(dir, 'docker.pid'),
      '--iptables=false',
      '--bridge=none',
      '--ip-forward=false',
      '--ip-masq=false',
      ...extraArgs,
    ],
    { detached: false, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const logStream = createWriteStream(logFile);
  child.stdout?.pipe(logStream, { end: false });
  child.stderr?.pipe(logStream, { end: false });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => readFile(logFile, 'utf8').catch(() => '');

  const stop = async (graceMs = 30_000) => {
    if (alive(child)) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (alive(child)) child.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    }
    await stopOrphanedContainerd(dir);
    await new Promise<void>((resolve) => logStream.end(resolve));
  };

  const deadline = Date.now() + timeoutMs;
  while (!(await ping(socket))) {
    if (!alive(child)) throw new Error(`dockerd exited early:\n${await log()}`);
    if (Date.now() > deadline) {
      await stop(5_000);
      throw new Error(`dockerd did not answer /_ping within ${timeoutMs} ms:\n${await log()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { dir, socket, logFile, child, docker: new Docker({ socketPath: socket }), log, stop };
}

/**
 * dockerd normally stops the containerd it supervises; after a SIGKILL it may not. That containerd
 * is ours (its pidfile is under our exec root and its command line names our dir), so end it by PID.
 */
async function stopOrphanedContainerd(dir: string): Promise<void> {
  const pid = Number(
    (await readFile(join(dir, 'exec', 'containerd', 'containerd.pid'), 'utf8').catch(() => '')).trim(),
  );
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!cmdline.includes(dir)) return; // gone, or the PID was reused by someone else
  process.kill(pid, 'SIGKILL');
}

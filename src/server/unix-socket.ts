import { lstat, mkdir, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';

/** dockerd (root, or the docker group via a plugin proxy) is the only intended client. */
export const SOCKET_MODE = 0o660;

/** True when something accepts connections on the socket: another loopvol is running. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Listens on a Unix socket, replacing a stale one left by a killed plugin but never stealing the
 * socket of a live one.
 */
export async function listenUnix(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isSocket())
      throw new Error(`${path} exists and is not a socket: move it away or choose another --socket`);
    if (await socketInUse(path))
      throw new Error(`another process is serving ${path}: stop it or choose another --socket`);
    await unlink(path);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // bind(2) creates the socket file with 0777 less the umask, inside this synchronous call: under
    // a umask that leaves exactly SOCKET_MODE it is never, even for a moment, more open than that.
    // (The umask is the process's; no JavaScript runs before it is restored.)
    const umask = process.umask(0o777 & ~SOCKET_MODE);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
}

/**
 * Stops accepting, lets in-flight requests finish (bounded), then removes the socket: a stale
 * socket of a dead plugin makes every `docker volume ls` retry for seconds.
 */
export async function closeUnix(server: Server, path: string, graceMs = 30_000): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
  await unlink(path).catch(() => undefined);
}

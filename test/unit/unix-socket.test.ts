import { lstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeUnix, listenUnix, SOCKET_MODE } from '../../src/server/unix-socket.js';

describe('the plugin socket', () => {
  let dir: string;
  let umask: number;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopvol-socket-'));
    // As a service manager or a shell might leave it: nothing masked.
    umask = process.umask(0);
  });
  afterEach(async () => {
    process.umask(umask);
    await rm(dir, { recursive: true, force: true });
  });

  it('is never more open than 0660, not even between its creation and the first connection', async () => {
    const server: Server = createServer();
    const path = join(dir, 'plugin.sock');
    // The listen callback runs as soon as the socket exists, before listenUnix goes on.
    const modes: number[] = [];
    const listen = server.listen.bind(server);
    server.listen = ((at: string, callback: () => void) =>
      listen(at, () => {
        modes.push(lstatSync(at).mode & 0o777);
        callback();
      })) as typeof server.listen;
    await listenUnix(server, path);
    try {
      expect(modes).toEqual([SOCKET_MODE]);
      expect(lstatSync(path).mode & 0o777).toBe(0o660);
      // The process's own umask is back as it was.
      expect(process.umask()).toBe(0);
    } finally {
      await closeUnix(server, path, 0);
    }
  });
});

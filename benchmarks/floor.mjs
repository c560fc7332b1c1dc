// The floor under Get and Path on this machine: the round trip of an empty node:http server on a
// Unix socket, with the same client. What loopvol adds is the difference.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { connect, now, stats } from './lib.mjs';

const EMPTY_SERVER = `
const server = require('node:http').createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = '{"Mountpoint":""}';
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
});
require('node:fs').rmSync(process.argv[1], { force: true });
server.listen(process.argv[1], () => process.stdout.write('ready'));`;

export async function httpFloor(dir, { samples }) {
  const socket = join(dir, 'floor.sock');
  const server = spawn(process.execPath, ['-e', EMPTY_SERVER, socket], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const exited = once(server, 'exit').then(([code]) => {
      throw new Error(`the empty server exited (${code}) before listening`);
    });
    // Only a failure before it listens matters; the kill at the end exits it too.
    exited.catch(() => undefined);
    await Promise.race([once(server.stdout, 'data'), exited]);
    const client = connect(socket);
    const times = [];
    for (let k = 0; k < samples * 1.1; k++) {
      const t = now();
      await client.call('VolumeDriver.Path', { Name: 'floor' });
      // The first tenth warms both sides up, as the scale section's volumes do.
      if (k >= samples * 0.1) times.push(now() - t);
    }
    client.close();
    return stats(times);
  } finally {
    server.kill();
    if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
  }
}

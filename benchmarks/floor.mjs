// The floor under Get and Path on this machine: the round trip of an empty node:http server on a
// Unix socket, with the same client. What loopvol adds is the difference.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { connect, now, stats } from './lib.mjs';

// Answers every POST /<Method> with that method's canned JSON (argv[2]), else {"Mountpoint":""}.
const EMPTY_SERVER = `
const replies = JSON.parse(process.argv[2]);
const server = require('node:http').createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = replies[req.url.slice(1)] ?? '{"Mountpoint":""}';
    res.writeHead(200, {
      'content-type': 'application/vnd.docker.plugins.v1+json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  });
});
require('node:fs').rmSync(process.argv[1], { force: true });
server.listen(process.argv[1], () => process.stdout.write('ready'));`;

/**
 * Starts the empty server on `socket`; `replies` maps a method to the JSON it answers (the same
 * bytes loopvol answered, so both sides encode and decode alike).
 */
export async function startEmptyServer(socket, replies = {}) {
  const server = spawn(process.execPath, ['-e', EMPTY_SERVER, socket, JSON.stringify(replies)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const stop = async () => {
    server.kill();
    if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
  };
  try {
    const exited = once(server, 'exit').then(([code]) => {
      throw new Error(`the empty server exited (${code}) before listening`);
    });
    // Only a failure before it listens matters; the kill at the end exits it too.
    exited.catch(() => undefined);
    await Promise.race([once(server.stdout, 'data'), exited]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, stop };
}

export async function httpFloor(dir, { samples }) {
  const server = await startEmptyServer(join(dir, 'floor.sock'));
  try {
    const client = connect(server.socket);
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
    await server.stop();
  }
}

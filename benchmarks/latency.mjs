// Get and Path latency as dockerd sees it: go-client/main.go (net/http over the socket, as moby's
// plugin client) asks one request after another, of loopvol and, in the same run, of an empty
// node:http server answering the same JSON. Rounds interleave the two, so that load from elsewhere
// on the machine falls on both. The client is built here, standard library only (no network).
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startEmptyServer } from './floor.mjs';
import { stats } from './lib.mjs';

const run = promisify(execFile);
const SOURCE = new URL('./go-client/main.go', import.meta.url).pathname;
const METHODS = ['VolumeDriver.Get', 'VolumeDriver.Path'];
/** The target: loopvol's p99 at most this times the empty server's. */
export const P99_TARGET = 1.3;

const built = new Map();

/**
 * The client built under `dir` (once per directory), or why not: without Go the section is skipped
 * with a message, except in CI, where a missing toolchain is a broken setup.
 */
export function goClient(dir) {
  if (!built.has(dir)) built.set(dir, build(join(dir, 'go-client')));
  return built.get(dir);
}

async function build(dir) {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
  } catch {
    const reason = 'no Go toolchain: apt-get install golang-go (scripts/setup installs it)';
    if (process.env.CI) throw new Error(`the Go-client latency section needs Go: ${reason}`);
    process.stderr.write(`go-client latency skipped: ${reason}\n`);
    return { skipped: reason };
  }
  mkdirSync(dir, { recursive: true });
  const binary = join(dir, 'latency-client');
  // GOPATH mode on one file: no go.mod, no module download; the build cache stays in `dir`.
  const env = {
    ...process.env,
    GOCACHE: join(dir, 'cache'),
    GOPATH: join(dir, 'gopath'),
    GO111MODULE: 'off',
    GOPROXY: 'off',
    GOFLAGS: '',
  };
  await run('go', ['build', '-o', binary, SOURCE], { env });
  return { binary };
}

async function measure(binary, socket, { volumes, requests }) {
  const args = ['-socket', socket, '-volumes', String(volumes), '-requests', String(requests)];
  const { stdout } = await run(binary, [...args, '-methods', METHODS.join(',')], {
    maxBuffer: 256 * 2 ** 20,
  });
  return JSON.parse(stdout);
}

/**
 * `rounds` times: the empty server, then loopvol (`daemon`, serving volumes s0..s<volumes-1>),
 * `requests` Gets and Paths each after a warm-up. The empty server answers what loopvol answered
 * for one of its volumes. Returns p50/p99/p99.9 of both and loopvol's p99 over the empty one's.
 */
export async function goLatency(daemon, dir, { volumes, requests, rounds }) {
  const client = await goClient(dir);
  if (client.skipped) return client;
  const replies = {};
  for (const method of METHODS)
    replies[method] = JSON.stringify(await daemon.call(method, { Name: `s${volumes - 1}` }));
  const server = await startEmptyServer(join(dir, 'empty.sock'), replies);
  const times = Object.fromEntries(
    ['empty', 'loopvol'].map((side) => [side, Object.fromEntries(METHODS.map((m) => [m, []]))]),
  );
  const add = (side, measured) => {
    for (const method of METHODS) times[side][method].push(...measured[method]);
  };
  try {
    for (let r = 0; r < rounds; r++) {
      add('empty', await measure(client.binary, server.socket, { volumes, requests }));
      add('loopvol', await measure(client.binary, daemon.socket, { volumes, requests }));
    }
  } finally {
    await server.stop();
  }
  const summary = (side) => ({
    get: stats(times[side]['VolumeDriver.Get']),
    path: stats(times[side]['VolumeDriver.Path']),
  });
  const empty = summary('empty');
  const loopvol = summary('loopvol');
  return {
    rounds,
    requestsPerRound: requests,
    empty,
    loopvol,
    p99Ratio: { get: loopvol.get.p99 / empty.get.p99, path: loopvol.path.p99 / empty.path.p99 },
    target: P99_TARGET,
  };
}

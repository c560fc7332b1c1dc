// Volume lifecycle speed: loopvol over its socket versus the plain shell sequence it automates.
// Prints medians; asserts nothing (timings belong here, not in tests). Run as root:
//   npm run bench            (LOOPVOL_BENCH_CYCLES=N to change the count, default 30)
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const cycles = Number(process.env.LOOPVOL_BENCH_CYCLES ?? 30);
const dir = mkdtempSync(join(tmpdir(), 'loopvol-bench-'));
const socket = join(dir, 'bench.sock');
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function call(method, body) {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, agent, path: `/${method}`, method: 'POST' }, (res) => {
      let raw = '';
      res.on('data', (c) => {
        raw += c;
      });
      res.on('end', () => {
        const reply = JSON.parse(raw);
        if (reply.Err) reject(new Error(`${method}: ${reply.Err}`));
        else resolve(reply);
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e6;

async function timed(samples, key, work) {
  const start = now();
  const result = await work();
  samples[key] ??= [];
  samples[key].push(now() - start);
  return result;
}

function shellCycle(i) {
  const img = join(dir, `shell-${i}.img`);
  const mnt = join(dir, `shell-${i}`);
  // Fixed commands on paths this script made: the baseline an operator would script by hand.
  const script = `set -e; truncate -s 1G "$1"; mkdir -p "$2"; dev=$(losetup --find --show --direct-io=on "$1");
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$dev"; mount "$dev" "$2"; umount "$2";
losetup -d "$dev"; rm -f "$1"; rmdir "$2"`;
  execFileSync('sh', ['-c', script, 'sh', img, mnt]);
}

async function main() {
  const plugin = spawn(
    process.execPath,
    [
      new URL('../bin/loopvol', import.meta.url).pathname,
      'serve',
      '--socket',
      socket,
      '--data-root',
      join(dir, 'root'),
      '--log-level',
      'warn',
    ],
    { stdio: 'inherit' },
  );
  try {
    for (let i = 0; i < 100; i++) {
      try {
        await call('Plugin.Activate', {});
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const samples = {};
    for (let i = 0; i < cycles; i++) {
      const Name = `bench-${i}`;
      await timed(samples, 'total', async () => {
        await timed(samples, 'Create', () => call('VolumeDriver.Create', { Name, Opts: { size: '1G' } }));
        await timed(samples, 'Mount', () => call('VolumeDriver.Mount', { Name, ID: 'bench' }));
        await timed(samples, 'Unmount', () => call('VolumeDriver.Unmount', { Name, ID: 'bench' }));
        await timed(samples, 'Remove', () => call('VolumeDriver.Remove', { Name }));
      });
      await timed(samples, 'shell', async () => shellCycle(i));
    }
    const shell = median(samples.shell);
    console.log(`loopvol lifecycle benchmark: ${cycles} cycles of a 1G sparse ext4 volume (medians, ms)`);
    for (const key of ['Create', 'Mount', 'Unmount', 'Remove'])
      console.log(`  ${key.padEnd(8)} ${median(samples[key]).toFixed(1)}`);
    console.log(`  loopvol total        ${median(samples.total).toFixed(1)}`);
    console.log(`  plain shell sequence ${shell.toFixed(1)}`);
    console.log(`  ratio                ${(median(samples.total) / shell).toFixed(2)}x`);
  } finally {
    plugin.kill('SIGTERM');
    await new Promise((r) => plugin.once('exit', r));
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

// loopvol benchmarks: `npm run bench` (full) or `npm run bench -- --quick` (about 6 minutes);
// `--only backup,failover` runs those sections (lifecycle, io, pgbench, scale, backup, failover);
// scale includes the Go-client latency (latency.mjs) and the restarts.
// Prints a table and writes bench/results/<timestamp>.json; asserts nothing (timings belong
// here, not in tests). Run as root. LOOPVOL_BENCH_BIN=/path/to/bin/loopvol measures another build.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { backupCost, backupCostOnHost, failover } from './backup.mjs';
import { httpFloor } from './floor.mjs';
import { io } from './io.mjs';
import { BIN, releaseKernelState, startDaemon } from './lib.mjs';
import { concurrency, lifecycle } from './lifecycle.mjs';
import { pgbench } from './pgbench.mjs';
import { scale } from './scale.mjs';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, only: { type: 'string', default: '' } },
});
const quick = values.quick;
const only = values.only.split(',').filter(Boolean);
const want = (section) => only.length === 0 || only.includes(section);
const plan = quick
  ? {
      lifecycle: { cycles: 15, pauseMs: 300 },
      concurrency: { cycles: 10 },
      io: { reps: 2, runtime: 2, seqSize: '256M' },
      pgbench: { rounds: 2, seconds: 10 },
      scale: [{ volumes: 1000, samples: 500, go: { rounds: 3, requests: 500 }, restarts: 3 }],
      backup: { sizeSpec: '10G', dataBytes: 256 * 2 ** 20, legacy: false },
      failover: { sizeSpec: '2G', dataBytes: 256 * 2 ** 20, timeoutS: 2 },
    }
  : {
      lifecycle: { cycles: 40, pauseMs: 300 },
      concurrency: { cycles: 30 },
      io: { reps: 3, runtime: 10, seqSize: '1G' },
      pgbench: { rounds: 3, seconds: 30 },
      scale: [
        { volumes: 1000, samples: 2000, go: { rounds: 5, requests: 2000 }, restarts: 5 },
        { volumes: 10000, samples: 2000, go: { rounds: 5, requests: 2000 }, restarts: 5 },
      ],
      backup: { sizeSpec: '10G', dataBytes: 2 ** 30, legacy: true },
      failover: { sizeSpec: '10G', dataBytes: 2 ** 30, timeoutS: 2 },
    };

const machine = {
  cores: cpus().length,
  cpu: cpus()[0]?.model,
  memoryBytes: totalmem(),
  freeMemoryBytes: freemem(),
  kernel: release(),
  node: process.version,
  hostFilesystem: execFileSync('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', '--target', '/var/tmp'])
    .toString()
    .trim(),
  loopvol: BIN,
};

// The data root lives on the host filesystem (not a tmpfs /tmp): that is what volumes sit on.
const dir = mkdtempSync('/var/tmp/loopvol-bench-');
const results = { date: new Date().toISOString(), mode: quick ? 'quick' : 'full', machine, plan };
const f = (x, d = 1) => (x === undefined ? '-' : x.toFixed(d));
try {
  if (want('lifecycle') || want('io') || want('pgbench')) {
    // A master key, so that the lifecycle and fio also measure encrypted volumes.
    const keyFile = join(dir, 'master.key');
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    const daemon = await startDaemon(join(dir, 'main'), ['--key-file', keyFile]);
    try {
      if (want('lifecycle') || want('io')) {
        process.stderr.write('lifecycle...\n');
        results.lifecycle = await lifecycle(daemon, dir, plan.lifecycle);
        process.stderr.write('concurrency...\n');
        results.concurrency = await concurrency(daemon, plan.concurrency);
        process.stderr.write('fio...\n');
        results.io = await io(daemon, dir, { ...plan.io, quick });
      }
      if (want('pgbench')) {
        process.stderr.write('pgbench...\n');
        results.pgbench = await pgbench(daemon, dir, { ...plan.pgbench, quick });
      }
    } finally {
      await daemon.stop();
    }
  }
  if (want('scale')) {
    process.stderr.write('http floor...\n');
    results.httpFloor = await httpFloor(dir, { samples: plan.scale[0].samples * 2 });
    results.scale = [];
    for (const s of plan.scale) {
      process.stderr.write(`scale ${s.volumes}...\n`);
      results.scale.push(await scale(join(dir, `scale-${s.volumes}`), s));
    }
  }
  if (want('backup')) {
    process.stderr.write('backup cost...\n');
    results.backup = await backupCost(join(dir, 'backup'), plan.backup);
    if (!quick) results.backupOnHost = await backupCostOnHost(join(dir, 'backup-host'), plan.backup);
  }
  if (want('failover')) {
    process.stderr.write('failover (RPO/RTO)...\n');
    results.failover = await failover(join(dir, 'failover'), plan.failover);
  }
} finally {
  await releaseKernelState(dir);
  rmSync(dir, { recursive: true, force: true });
}

const lines = [
  `loopvol benchmark (${results.mode}), ${machine.cores} cores, ${machine.kernel}, node ${machine.node}`,
];
for (const [rhythm, l] of Object.entries(results.lifecycle ?? {})) {
  lines.push(
    `lifecycle ${rhythm.padEnd(12)} loopvol p50 ${f(l.loopvol.p50)} ms, shell p50 ${f(l.shell.p50)} ms, ratio ${f(l.ratio, 2)}x`,
    `  steps p50/p99 ms: ${Object.entries(l.steps)
      .map(([k, s]) => `${k} ${f(s.p50)}/${f(s.p99)}`)
      .join(', ')}`,
  );
}
const life = results.lifecycle;
if (life?.encrypted)
  lines.push(
    `encryption cost: encrypted lifecycle p50 ${f(life.encrypted.loopvol.p50)} ms vs plain back-to-back ${f(life['back-to-back'].loopvol.p50)} ms (${f(life.encrypted.loopvol.p50 / life['back-to-back'].loopvol.p50, 2)}x)`,
  );
const c = results.concurrency;
if (c)
  lines.push(`concurrency: 1 at a time ${f(c.one)}/s, 4 at a time ${f(c.four)}/s, ratio ${f(c.ratio, 2)}x`);
for (const [name, j] of Object.entries(results.io?.jobs ?? {})) {
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  lines.push(
    `fio ${name.padEnd(20)} plain ${f(med(j.plain), 0)} ${j.unit}, loop ${f(med(j.loop), 0)} ${j.unit}, ratio ${f(j.ratio, 2)}x`,
  );
}
const spread = (c) => `${f(c.ratio, 2)}x (rounds ${f(c.spread[0], 2)}-${f(c.spread[1], 2)})`;
const fs = results.io?.fsync;
if (fs) {
  for (const [name, c] of Object.entries(fs.configs))
    lines.push(`fio 4k randwrite+fsync, ${name.padEnd(42)} ${spread(c)}, Create ${f(c.createSeconds, 2)} s`);
  const fl = results.io.floor;
  lines.push(
    `fio floor, a flush through a bare loop device / a plain file: vs fsync ${spread(fl.vsFsync)}, vs fdatasync ${spread(fl.vsFdatasync)}`,
  );
}
const pg = results.pgbench;
if (pg?.skipped) lines.push(`pgbench skipped: ${pg.skipped}`);
else if (pg) {
  lines.push(
    `pgbench scale ${pg.scale}, ${pg.clients} clients, ${pg.rounds}x${pg.seconds} s: plain ${pg.plainTps.map((t) => f(t, 0)).join('/')} tps`,
  );
  for (const [name, c] of Object.entries(pg.configs))
    lines.push(`  ${name.padEnd(44)} ${spread(c)}, Create ${f(c.createSeconds, 2)} s`);
}
const floor = results.httpFloor;
if (floor)
  lines.push(
    `http floor (an empty node:http server, same client): p50/p99 ${f(floor.p50, 2)}/${f(floor.p99, 2)} ms`,
  );
for (const s of results.scale ?? []) {
  lines.push(
    `scale ${s.volumes} volumes (${s.mounted} mounted): Get p50/p99 ${f(s.get.p50, 2)}/${f(s.get.p99, 2)} ms, Path ${f(s.path.p50, 2)}/${f(s.path.p99, 2)} ms, List p50 ${f(s.list.p50)} ms, restart ${f(s.restartMs, 0)} ms (median of ${s.restartsMs?.map((x) => f(x, 0)).join(', ')}), RSS ${f(s.rssBytes / 2 ** 20, 0)} MiB, created in ${f(s.createSeconds)} s`,
  );
  const g = s.goClient;
  const q = (x) => `${f(x.p50, 2)}/${f(x.p99, 2)}/${f(x.p999, 2)}`;
  if (g?.skipped) lines.push(`  Go client: skipped (${g.skipped})`);
  else if (g)
    lines.push(
      `  Go client p50/p99/p99.9 ms: loopvol Get ${q(g.loopvol.get)}, Path ${q(g.loopvol.path)}; empty server Get ${q(g.empty.get)}, Path ${q(g.empty.path)}`,
      `  p99 loopvol/empty: Get ${f(g.p99Ratio.get, 2)}x, Path ${f(g.p99Ratio.path, 2)}x (target <= ${g.target}x; ${g.rounds} rounds of ${g.requestsPerRound})`,
    );
}
const mib = (bytes) => `${f(bytes / 2 ** 20)} MiB`;
for (const [where, b] of [
  ['xfs data root', results.backup],
  [`${machine.hostFilesystem.split(' ')[0]} data root`, results.backupOnHost],
]) {
  if (!b) continue;
  lines.push(`backup cost, ${where}:`);
  const row = (label, r) =>
    `  ${label.padEnd(34)} ${f(r.seconds, 2)} s via ${r.via}, restic read ${mib(r.readBytes)}, added ${mib(r.dataAddedBytes)}, ${r.filesChanged} files read, image ${mib(r.imageAllocatedBytes)} allocated`;
  lines.push(
    row(`${b.sizeSpec} volume, never written`, b.never),
    row(`${b.sizeSpec} holding ${mib(b.dataBytes)}, first`, b.first),
    row('incremental, 16 MiB rewritten', b.incremental),
  );
  if (b.wholeImage)
    lines.push(`  the same volume as one image (restic --stdin, before): ${f(b.wholeImage.seconds, 2)} s`);
}
const fo = results.failover;
if (fo) {
  lines.push(
    `failover ${mib(fo.dataBytes)} (session timeout ${fo.sessionTimeoutS} s): RTO ${f(fo.rtoSeconds, 2)} s (waiting for the takeover ${f(fo.waitForTakeoverSeconds, 2)} s, restore + mount ${f(fo.restoreAndMountSeconds, 2)} s)`,
    `  RPO: ${fo.filesRestoredIntact}/${fo.filesBackedUp} backed-up files intact, ${fo.lostOnlyWhatFollowedTheBackup ? 'lost only what was written after the last backup' : 'LOST MORE than what followed the last backup'}`,
  );
}
console.log(lines.join('\n'));
const out = new URL('../bench/results/', import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const file = join(out, `${results.date.replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
console.log(`written ${file}`);

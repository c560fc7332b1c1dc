// I/O inside a mounted volume against a plain directory on the same host filesystem (fio),
// interleaved run by run (plain, loop, loop, plain, ...) because this kind of machine is noisy:
// every job on the default volume, and the fsync-heavy one on each volume configuration
// (volumes.mjs). The floor under the fsync ratio is measured too: fsync of a plain file against
// fsync through a loop device over the same kind of file, with no filesystem inside.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from './lib.mjs';
import { configsFor, mountVolume, ratioOf, roundOrder } from './volumes.mjs';

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function jobs({ runtime, seqSize }) {
  return {
    // A database's pattern: every 4k write followed by fsync.
    'randwrite-4k-fsync': {
      args: [
        '--filename=rand',
        '--rw=randwrite',
        '--bs=4k',
        '--size=256M',
        '--fsync=1',
        `--runtime=${runtime}`,
        '--time_based',
      ],
      metric: (j) => j.write.iops,
      unit: 'IOPS',
    },
    'seq-write-1M': {
      // A new file each run (unlinked after it): every run allocates, none merely overwrites.
      args: [
        '--filename=seq',
        '--rw=write',
        '--bs=1M',
        `--size=${seqSize}`,
        '--direct=1',
        '--end_fsync=1',
        '--unlink=1',
      ],
      metric: (j) => j.write.bw / 1024,
      unit: 'MiB/s',
    },
    'seq-read-1M': {
      // fio lays the file out first (not measured), then reads it.
      args: ['--filename=seq', '--rw=read', '--bs=1M', `--size=${seqSize}`, '--direct=1'],
      metric: (j) => j.read.bw / 1024,
      unit: 'MiB/s',
    },
  };
}

function fio(directory, name, args) {
  const out = execFileSync(
    'fio',
    [`--name=${name}`, `--directory=${directory}`, '--ioengine=psync', '--output-format=json', ...args],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  return JSON.parse(out.toString()).jobs[0];
}

export async function io(daemon, dir, { reps, runtime, seqSize, quick }) {
  // A connection per call: the fio runs leave a kept-alive one idle past the daemon's timeout.
  const client = connect(daemon.socket, { keepAlive: false });
  const plain = join(dir, 'plain');
  mkdirSync(plain, { recursive: true });
  // Room for the 256M random-write file and the sequential file, with ext4's overhead.
  await client.call('VolumeDriver.Create', { Name: 'fio', Opts: { size: '3G' } });
  const { Mountpoint: loop } = await client.call('VolumeDriver.Mount', { Name: 'fio', ID: 'bench' });
  try {
    const result = {};
    for (const [name, job] of Object.entries(jobs({ runtime, seqSize }))) {
      const runs = { plain: [], loop: [] };
      for (let rep = 0; rep < reps; rep++) {
        const order = rep % 2 === 0 ? ['plain', 'loop'] : ['loop', 'plain'];
        for (const where of order) {
          runs[where].push(job.metric(fio(where === 'plain' ? plain : loop, name, job.args)));
        }
      }
      result[name] = {
        unit: job.unit,
        plain: runs.plain,
        loop: runs.loop,
        ratio: median(runs.loop) / median(runs.plain),
      };
    }
    return {
      reps,
      runtime,
      seqSize,
      jobs: result,
      fsync: await fsyncByConfig(client, plain, quick, reps, runtime),
      floor: fsyncFloor(dir, reps, runtime),
    };
  } finally {
    await client.call('VolumeDriver.Unmount', { Name: 'fio', ID: 'bench' });
    await client.call('VolumeDriver.Remove', { Name: 'fio' });
    client.close();
  }
}

/** 4k randwrite+fsync on a volume of each configuration against plain, interleaved. */
async function fsyncByConfig(client, plain, quick, reps, runtime) {
  const job = jobs({ runtime, seqSize: '1M' })['randwrite-4k-fsync'];
  const places = [{ name: 'plain', mountPoint: plain, runs: [] }];
  try {
    for (const [i, config] of configsFor(quick).entries()) {
      places.push({
        name: config.name,
        runs: [],
        ...(await mountVolume(client, config, `fio${i}`, { size: '1G' })),
      });
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const p of roundOrder(rep, places)) p.runs.push(job.metric(fio(p.mountPoint, 'fsync', job.args)));
    }
    const [base, ...volumes] = places;
    return {
      unit: job.unit,
      plain: base.runs,
      configs: Object.fromEntries(
        volumes.map((v) => [
          v.name,
          { loop: v.runs, createSeconds: v.createSeconds, ...ratioOf(base.runs, v.runs) },
        ]),
      ),
    };
  } finally {
    for (const p of places) await p.remove?.();
  }
}

/**
 * The loop layer's own floor, no filesystem inside: 4k random writes each followed by a flush,
 * straight to a loop device (direct I/O, 4 KiB blocks) over a fully written image, against the
 * same writes to a plain file of the host filesystem with an fsync each (fio's randwrite job) and
 * with an fdatasync each (a database's commit: PostgreSQL fdatasyncs its WAL). The loop device
 * turns each flush into a full fsync of the image, whose timestamps the writes changed.
 */
function fsyncFloor(dir, reps, runtime) {
  const file = join(dir, 'floor.img');
  const image = join(dir, 'floor-loop.img');
  execFileSync('dd', ['if=/dev/zero', `of=${image}`, 'bs=1M', 'count=256', 'conv=fsync', 'status=none']);
  const device = execFileSync('losetup', ['--find', '--show', '--direct-io=on', '--sector-size=4096', image])
    .toString()
    .trim();
  const args = ['--rw=randwrite', '--bs=4k', '--size=256M', `--runtime=${runtime}`, '--time_based'];
  const once = (filename, sync) =>
    JSON.parse(
      execFileSync(
        'fio',
        ['--name=floor', `--filename=${filename}`, '--ioengine=psync', '--output-format=json', sync, ...args],
        { maxBuffer: 64 * 1024 * 1024 },
      ).toString(),
    ).jobs[0].write.iops;
  const kinds = {
    plainFsync: () => once(file, '--fsync=1'),
    plainFdatasync: () => once(file, '--fdatasync=1'),
    loop: () => once(device, '--fsync=1'),
  };
  try {
    const runs = { plainFsync: [], plainFdatasync: [], loop: [] };
    for (let rep = 0; rep < reps; rep++) {
      for (const kind of roundOrder(rep, Object.keys(kinds))) runs[kind].push(kinds[kind]());
    }
    return {
      unit: 'IOPS',
      ...runs,
      vsFsync: ratioOf(runs.plainFsync, runs.loop),
      vsFdatasync: ratioOf(runs.plainFdatasync, runs.loop),
    };
  } finally {
    execFileSync('losetup', ['--detach', device]);
    rmSync(file, { force: true });
    rmSync(image, { force: true });
  }
}

// I/O inside a mounted volume against a plain directory on the same host filesystem (fio),
// interleaved run by run (plain, loop, loop, plain, ...) because this kind of machine is noisy.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from './lib.mjs';

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

export async function io(daemon, dir, { reps, runtime, seqSize }) {
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
    return { reps, runtime, seqSize, jobs: result };
  } finally {
    await client.call('VolumeDriver.Unmount', { Name: 'fio', ID: 'bench' });
    await client.call('VolumeDriver.Remove', { Name: 'fio' });
    client.close();
  }
}

// The volume configurations the I/O sections (io.mjs, pgbench.mjs) compare with a plain directory
// of the host filesystem, and how each is made: Create options through the daemon, and for the
// exploratory ones a loop-layer setting changed on the device after Mount (not an option loopvol
// offers: measured to show what it would buy).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { readMounts } from '../dist/system/mountinfo.js';

const sysfs = (device, file, value) => writeFileSync(`/sys/block/${basename(device)}/queue/${file}`, value);

export const CONFIGS = [
  { name: 'sparse (default)', opts: {} },
  { name: 'sparse=false', opts: { sparse: 'false' } },
  { name: 'prealloc=zero', opts: { prealloc: 'zero' } },
  // Software AES on a VM without AES instructions: encryption's cost (the bench daemon has a key).
  { name: 'encrypt=true', opts: { encrypt: 'true' } },
  {
    name: 'sparse, direct-io off',
    opts: {},
    explore: true,
    tune: (device) => execFileSync('losetup', ['--direct-io=off', device]),
  },
  {
    name: 'prealloc=zero, mq-deadline',
    opts: { prealloc: 'zero' },
    explore: true,
    tune: (device) => sysfs(device, 'scheduler', 'mq-deadline'),
  },
  {
    // The block layer then drops flushes: fsync'd data can be lost at a power cut. The ceiling only.
    name: 'prealloc=zero, write through (NOT durable)',
    opts: { prealloc: 'zero' },
    explore: true,
    tune: (device) => sysfs(device, 'write_cache', 'write through'),
  },
];

/** The configurations a run measures: the exploratory ones only in a full run. */
export const configsFor = (quick) => CONFIGS.filter((c) => !quick || !c.explore);

/**
 * Creates and mounts volume `name` in configuration `config` through `client`; returns its mount
 * point, the seconds Create took and `remove()` (unmount, remove). Create's time is the option's cost.
 */
export async function mountVolume(client, config, name, opts) {
  const started = performance.now();
  await client.call('VolumeDriver.Create', { Name: name, Opts: { ...config.opts, ...opts } });
  const createSeconds = (performance.now() - started) / 1000;
  let device;
  const remove = async () => {
    // Queue settings outlive the detach: the next image on this device must not inherit them.
    if (device) {
      sysfs(device, 'write_cache', 'write back');
      sysfs(device, 'scheduler', 'none');
    }
    await client.call('VolumeDriver.Unmount', { Name: name, ID: 'bench' }).catch(() => undefined);
    await client.call('VolumeDriver.Remove', { Name: name });
  };
  try {
    const { Mountpoint } = await client.call('VolumeDriver.Mount', { Name: name, ID: 'bench' });
    if (config.tune) {
      device = (await readMounts()).find((m) => m.mountPoint === Mountpoint)?.source;
      if (!device) throw new Error(`no device mounted on ${Mountpoint}`);
      config.tune(device);
    }
    return { mountPoint: Mountpoint, createSeconds, remove };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Loop against plain from interleaved runs: the ratio of the medians, and the spread of the ratios
 * of each round (a volume's run against the plain run of the same round).
 */
export function ratioOf(plain, loop) {
  const perRound = loop.map((x, i) => x / plain[i]);
  return {
    ratio: median(loop) / median(plain),
    spread: [Math.min(...perRound), Math.max(...perRound)],
  };
}

/** Rounds in alternating order (plain first, then last, ...), so neither side always runs first. */
export const roundOrder = (round, names) => (round % 2 === 0 ? names : [...names].reverse());

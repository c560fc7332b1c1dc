// Requests at scale: N volumes of 16M, a tenth mounted; Get and Path on random names (with this
// Node client, and with dockerd's kind of Go client against an empty server: latency.mjs), List,
// restarts (SIGTERM, start, until List answers with every volume) and the daemon's memory.
import { dirname } from 'node:path';
import { goLatency } from './latency.mjs';
import { now, startDaemon, stats } from './lib.mjs';

const BATCH = 16;

async function inBatches(count, work) {
  for (let i = 0; i < count; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => work(i + j)));
  }
}

export async function scale(dir, { volumes, samples, go, restarts = 1 }) {
  const name = (i) => `s${i}`;
  const mounted = (i) => i % 10 === 0;
  let daemon = await startDaemon(dir);
  try {
    let t = now();
    await inBatches(volumes, (i) =>
      daemon.call('VolumeDriver.Create', { Name: name(i), Opts: { size: '16M' } }),
    );
    const createSeconds = (now() - t) / 1000;
    await inBatches(volumes, (i) =>
      mounted(i) ? daemon.call('VolumeDriver.Mount', { Name: name(i), ID: 'bench' }) : undefined,
    );

    const get = [];
    const path = [];
    for (let k = 0; k < samples; k++) {
      const Name = name(Math.floor(Math.random() * volumes));
      t = now();
      await daemon.call('VolumeDriver.Get', { Name });
      get.push(now() - t);
      t = now();
      await daemon.call('VolumeDriver.Path', { Name });
      path.push(now() - t);
    }
    const list = [];
    for (let k = 0; k < 20; k++) {
      t = now();
      await daemon.call('VolumeDriver.List', {});
      list.push(now() - t);
    }

    const goClient = go ? await goLatency(daemon, dirname(dir), { volumes, ...go }) : undefined;

    // Several restarts: one is at the mercy of whatever else the machine does at that moment.
    const restartsMs = [];
    for (let r = 0; r < restarts; r++) {
      await daemon.stop();
      daemon = await startDaemon(dir);
      restartsMs.push(daemon.readyMs);
      const listed = (await daemon.call('VolumeDriver.List', {})).Volumes.length;
      if (listed !== volumes) throw new Error(`after a restart List shows ${listed} of ${volumes} volumes`);
    }
    const rssBytes = daemon.rssBytes();

    await inBatches(volumes, (i) =>
      mounted(i) ? daemon.call('VolumeDriver.Unmount', { Name: name(i), ID: 'bench' }) : undefined,
    );
    await inBatches(volumes, (i) => daemon.call('VolumeDriver.Remove', { Name: name(i) }));
    return {
      volumes,
      mounted: Math.ceil(volumes / 10),
      createSeconds,
      get: stats(get),
      path: stats(path),
      list: stats(list),
      ...(goClient ? { goClient } : {}),
      restartMs: stats(restartsMs).p50,
      restartsMs,
      rssBytes,
    };
  } finally {
    await daemon.stop();
  }
}

// Requests at scale: N volumes of 16M, a tenth mounted; Get and Path on random names, List,
// a restart (SIGTERM, start, until List answers with every volume) and the daemon's memory.
import { now, startDaemon, stats } from './lib.mjs';

const BATCH = 16;

async function inBatches(count, work) {
  for (let i = 0; i < count; i += BATCH) {
    await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_, j) => work(i + j)));
  }
}

export async function scale(dir, { volumes, samples }) {
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

    await daemon.stop();
    daemon = await startDaemon(dir);
    const restartMs = daemon.readyMs;
    const listed = (await daemon.call('VolumeDriver.List', {})).Volumes.length;
    if (listed !== volumes) throw new Error(`after the restart List shows ${listed} of ${volumes} volumes`);
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
      restartMs,
      rssBytes,
    };
  } finally {
    await daemon.stop();
  }
}

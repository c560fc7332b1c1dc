// Lifecycle of a 1G sparse ext4 volume over one keep-alive connection (Create, Mount, Unmount,
// Remove), interleaved cycle by cycle with the shell sequence that does the same by hand; and the
// same for an encrypted volume (-o encrypt=true), whose cost is the difference to back-to-back.
import { now, shellLifecycle, stats } from './lib.mjs';

/**
 * Three rhythms: `spaced` leaves `pauseMs` between cycles (volumes created as tasks start, the
 * daemon idle between them), `back-to-back` runs them without a pause (a burst; the shell
 * sequence gets the same pauses and bursts), `encrypted` is back-to-back with encrypted volumes
 * (the daemon has a --key-file; the shell sequence stays the plain one).
 */
export async function lifecycle(daemon, dir, { cycles, pauseMs }) {
  const result = {};
  for (const [rhythm, pause, extra] of [
    ['spaced', pauseMs, {}],
    ['back-to-back', 0, {}],
    ['encrypted', 0, { encrypt: 'true' }],
  ]) {
    const steps = { Create: [], Mount: [], Unmount: [], Remove: [] };
    const total = [];
    const shell = [];
    for (let i = 0; i < cycles; i++) {
      const Name = `life-${rhythm}-${i}`;
      const bodies = {
        Create: { Name, Opts: { size: '1G', ...extra } },
        Mount: { Name, ID: 'bench' },
        Unmount: { Name, ID: 'bench' },
        Remove: { Name },
      };
      if (pause) await new Promise((r) => setTimeout(r, pause));
      const start = now();
      for (const step of Object.keys(steps)) {
        const t = now();
        await daemon.call(`VolumeDriver.${step}`, bodies[step]);
        steps[step].push(now() - t);
      }
      total.push(now() - start);
      if (pause) await new Promise((r) => setTimeout(r, pause));
      const t = now();
      shellLifecycle(dir, i);
      shell.push(now() - t);
    }
    const loopvol = stats(total);
    const baseline = stats(shell);
    result[rhythm] = {
      pauseMs: pause,
      cycles,
      loopvol,
      shell: baseline,
      ratio: loopvol.p50 / baseline.p50,
      steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, stats(v)])),
    };
  }
  return result;
}

/** Throughput of lifecycles on different volumes, one at a time and four at a time. */
export async function concurrency(daemon, { cycles }) {
  const run = async (workers) => {
    const start = now();
    await Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let i = 0; i < cycles; i++) {
          const Name = `conc-${workers}-${w}-${i}`;
          await daemon.call('VolumeDriver.Create', { Name, Opts: { size: '1G' } });
          await daemon.call('VolumeDriver.Mount', { Name, ID: 'bench' });
          await daemon.call('VolumeDriver.Unmount', { Name, ID: 'bench' });
          await daemon.call('VolumeDriver.Remove', { Name });
        }
      }),
    );
    return (workers * cycles) / ((now() - start) / 1000);
  };
  const one = await run(1);
  const four = await run(4);
  return { cycles, one, four, ratio: four / one };
}

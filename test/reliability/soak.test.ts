import { readdir, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { dockerSuite, runContainer } from '../helpers/dockerd.js';
import { kernelStateUnder } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

/** CI runs a short soak; `npm run soak` runs the full 1,000 lifecycles (LOOPVOL_SOAK_CYCLES). */
const CYCLES = Number(process.env.LOOPVOL_SOAK_CYCLES ?? 24);
const WARM_UP = 4;

async function processFigures(pid: number): Promise<{ fds: number; rssKiB: number }> {
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  const rss = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return { fds, rssKiB: Number(rss?.[1] ?? 0) };
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'dockerd']))(
  'soak: volume lifecycles with containers',
  () => {
    const suite = dockerSuite('soak', ['--log-level', 'warn']);

    /**
     * One lifecycle through dockerd: create, a container writes random data and its checksum, a
     * second container verifies it, remove. Returns a failure description or undefined.
     */
    async function lifecycle(i: number): Promise<string | undefined> {
      const { docker, driver } = suite.env;
      const Name = `soak-${i}`;
      await docker.createVolume({ Name, Driver: driver, DriverOpts: { size: '16M' } });
      const bind = { Binds: [`${Name}:/data`] };
      const write = await runContainer(
        docker,
        'head -c 1048576 /dev/urandom > /data/blob && sha256sum /data/blob > /data/blob.sha256 && cat /data/blob.sha256',
        bind,
      );
      const verify = await runContainer(
        docker,
        'sha256sum -c /data/blob.sha256 && cat /data/blob.sha256',
        bind,
      );
      await docker.getVolume(Name).remove();
      if (write.exitCode !== 0) return `${Name}: writer exited ${write.exitCode}: ${write.output}`;
      // sha256sum -c recomputes the data's checksum against the one the writer stored in the
      // volume. (The writer's own stdout is not compared: dockerd's log capture of a container that
      // exits at once was seen to come back empty once in 1,000 runs.)
      if (verify.exitCode !== 0 || !verify.output.startsWith('/data/blob: OK\n')) {
        return `${Name}: checksum not verified: ${verify.output}`;
      }
      return undefined;
    }

    it(
      `runs ${CYCLES} lifecycles at random concurrency without a leak or a bad checksum`,
      async () => {
        const pid = suite.plugin.child.pid as number;
        for (let i = 0; i < WARM_UP; i++) expect(await lifecycle(-1 - i)).toBeUndefined();
        const before = await processFigures(pid);
        const started = Date.now();
        const failures: string[] = [];
        // RSS every tenth of the run: a leak climbs steadily, heap warm-up levels off.
        const rssMiB: string[] = [];
        let next = 0;
        while (next < CYCLES) {
          const width = Math.min(1 + Math.floor(Math.random() * 6), CYCLES - next);
          const batch = Array.from({ length: width }, (_, k) => next + k);
          const tenth = Math.floor((next * 10) / CYCLES);
          next += width;
          for (const failure of await Promise.all(batch.map(lifecycle))) if (failure) failures.push(failure);
          if (Math.floor((next * 10) / CYCLES) > tenth) {
            rssMiB.push(((await processFigures(pid)).rssKiB / 1024).toFixed(0));
          }
        }
        const after = await processFigures(pid);
        console.log(
          `soak: ${CYCLES} lifecycles in ${((Date.now() - started) / 1000).toFixed(1)} s, ${failures.length} failures; ` +
            `plugin fds ${before.fds} -> ${after.fds}, RSS ${(before.rssKiB / 1024).toFixed(1)} -> ${(after.rssKiB / 1024).toFixed(1)} MiB ` +
            `(each tenth: ${rssMiB.join(' ')})`,
        );
        expect(failures).toEqual([]);
        expect(await kernelStateUnder(suite.plugin.dataRoot)).toEqual({ mounts: [], loops: [] });
        expect((await readdir(`${suite.plugin.dataRoot}/volumes`)).length).toBe(0);
        // Descriptors must not grow with the number of lifecycles (a few may be keep-alive sockets).
        expect(after.fds).toBeLessThanOrEqual(before.fds + 8);
        // A generous bound: a leak of even a few KiB per lifecycle over the full soak shows here.
        expect(after.rssKiB - before.rssKiB).toBeLessThan(96 * 1024);
      },
      120_000 + CYCLES * 2_000,
    );
  },
);

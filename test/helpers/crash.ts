import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AFTER_ANSWER_STEPS, type CrashStep } from '../../src/core/faults.js';
import { ok, sha } from './calls.js';
import { kernelStateUnder } from './kernel.js';
import { pluginCases } from './plugin.js';
import { storageAvailable } from './tools.js';

const VOL = 'vol';
const MiB = 1024 * 1024;
const HOLDER = 'h'.repeat(64);

/** Steps reached only on another attach path: the daemon runs on it, before and after the crash. */
const STEP_ENV: Partial<Record<CrashStep, Record<string, string>>> = {
  'mount:set-fd': { LOOPVOL_LOOP_ATTACH: 'set-fd' },
};

/** The operation each step belongs to, and the request that reaches it. */
const operationOf = (step: CrashStep) =>
  step.split(':')[0] as 'create' | 'mount' | 'unmount' | 'remove' | 'resize';

/**
 * Kills the daemon (SIGKILL) at each of `steps` and checks the restarted one; `withTempFile`: also
 * the metadata temp file case. Two test files share the steps, so that their halves run in parallel.
 */
export function crashSuite(steps: readonly CrashStep[], withTempFile: boolean): void {
  describe.runIf(storageAvailable())('crash at every step boundary (LOOPVOL_CRASH_AT)', () => {
    const cases = pluginCases();
    const plugin = (env: Record<string, string> = {}) => cases.start({ env });

    /** Creates VOL with a file of known content; leaves it mounted by HOLDER when `mounted`. */
    async function seed(mounted: boolean): Promise<string> {
      const p = await plugin();
      await ok(p, 'VolumeDriver.Create', { Name: VOL, Opts: { size: '64M' } });
      const { Mountpoint } = await ok(p, 'VolumeDriver.Mount', { Name: VOL, ID: HOLDER });
      const data = randomBytes(3 * 1024 * 1024);
      await writeFile(join(String(Mountpoint), 'payload'), data);
      if (!mounted) await ok(p, 'VolumeDriver.Unmount', { Name: VOL, ID: HOLDER });
      expect(await p.stop()).toBe(0);
      return sha(data);
    }

    it.each(steps)('restarts consistent after SIGKILL at %s', async (step) => {
      await cases.begin('crash');
      const operation = operationOf(step);
      const checksum = operation === 'create' ? undefined : await seed(operation === 'unmount');
      const env = STEP_ENV[step] ?? {};

      // The crashing run: the request never gets an answer and the daemon dies by SIGKILL at the step.
      const doomed = await plugin({ ...env, LOOPVOL_CRASH_AT: step });
      const exited = once(doomed.child, 'exit');
      const request = {
        create: () => doomed.call('VolumeDriver.Create', { Name: VOL, Opts: { size: '64M' } }),
        mount: () => doomed.call('VolumeDriver.Mount', { Name: VOL, ID: HOLDER }),
        unmount: () => doomed.call('VolumeDriver.Unmount', { Name: VOL, ID: HOLDER }),
        remove: () => doomed.call('VolumeDriver.Remove', { Name: VOL }),
        // Unmounted, so ext4 grows offline (online growth needs CAP_SYS_RESOURCE, absent here).
        resize: () => doomed.call('Loopvol.Resize', { Name: VOL, Size: '96M' }),
      }[operation];
      if (AFTER_ANSWER_STEPS.includes(step)) await request().catch(() => undefined);
      else await expect(request()).rejects.toThrow();
      const [, signal] = await exited;
      expect(signal, `the daemon must die at ${step}:\n${doomed.logs()}`).toBe('SIGKILL');
      if (step === 'mount:set-fd') {
        // The crash left a device serving the image without its settings: start-up must not keep it.
        expect((await kernelStateUnder(doomed.dataRoot)).loops).toHaveLength(1);
      }

      // The restart: reconcile, then every invariant.
      const p = await plugin(env);
      const root = p.dataRoot;
      // Activate is answered before reconcile; List waits for it.
      const listed = ((await ok(p, 'VolumeDriver.List', {})).Volumes as { Name: string }[]).map(
        (v) => v.Name,
      );
      expect(await readdir(join(root, 'staging')), 'no half-made create left').toEqual([]);
      expect(await readdir(join(root, 'trash')), 'no half-done remove left').toEqual([]);
      const tempFiles = (await readdir(join(root, 'volumes'), { recursive: true })).filter((f) =>
        f.includes('.tmp-'),
      );
      expect(tempFiles).toEqual([]);

      const get = await p.call('VolumeDriver.Get', { Name: VOL });
      const exists = get.status === 200;
      expect(listed).toEqual(exists ? [VOL] : []);
      const expectExists = ![
        'create:staged',
        'create:image',
        'create:formatted',
        'remove:trashed',
        'remove:deleted',
      ].includes(step);
      expect(exists, `volume exists after a crash at ${step}`).toBe(expectExists);

      const kernel = await kernelStateUnder(root);
      if (!exists) {
        expect(kernel).toEqual({ mounts: [], loops: [] });
        expect(await readdir(join(root, 'volumes'))).toEqual([]);
        return;
      }
      const status = (
        get.body.Volume as { Status: { mounted: boolean; holders: number; loopDevice: string | null } }
      ).Status;
      // Holders agree with the kernel: mounted exactly when held, a loop device exactly when mounted.
      expect(status.mounted).toBe(kernel.mounts.length === 1);
      expect(status.mounted).toBe(status.holders > 0);
      expect(kernel.loops.length).toBe(status.mounted ? 1 : 0);
      expect(status.loopDevice).toBe(kernel.loops[0] ?? null);
      // Only a Mount recorded before the crash keeps its holder (the client never heard back).
      expect(status.holders).toBe(step === 'mount:recorded' ? 1 : 0);

      // An interrupted resize is completed by running it again.
      if (operation === 'resize') {
        await ok(p, 'Loopvol.Resize', { Name: VOL, Size: '96M' });
        expect((await ok(p, 'VolumeDriver.Get', { Name: VOL })).Volume).toMatchObject({
          Status: { size: 96 * MiB },
        });
      }

      // Data written before the crash is intact, and the volume still goes through its lifecycle.
      const { Mountpoint } = await ok(p, 'VolumeDriver.Mount', { Name: VOL, ID: 'check' });
      if (checksum) expect(sha(await readFile(join(String(Mountpoint), 'payload')))).toBe(checksum);
      else expect(await readdir(String(Mountpoint))).toEqual([]);
      await writeFile(join(String(Mountpoint), 'after'), 'ok');
      await ok(p, 'VolumeDriver.Unmount', { Name: VOL, ID: 'check' });
      if (status.holders > 0) await ok(p, 'VolumeDriver.Unmount', { Name: VOL, ID: HOLDER });
      await ok(p, 'VolumeDriver.Remove', { Name: VOL });
      expect(await kernelStateUnder(root)).toEqual({ mounts: [], loops: [] });
      expect(await readdir(join(root, 'volumes'))).toEqual([]);
    });

    // Registered in one of the two files only (not skipped in the other).
    if (withTempFile)
      it('deletes a metadata temp file left by a crash mid-write, and a retried Create succeeds', async () => {
        const dir = await cases.begin('crash-temp');
        await seed(false);
        const volumeDir = join(dir, 'root', 'volumes', VOL);
        await writeFile(join(volumeDir, '.tmp-0123456789ab'), '{"version":1,"na');
        const p = await plugin();
        // Activate is answered before reconcile (which deletes the temp file); List waits for it.
        await ok(p, 'VolumeDriver.List', {});
        expect((await readdir(volumeDir)).sort()).toEqual(['disk.img', 'holders.json', 'mnt', 'volume.json']);
        // A Create the client retries after a crash is a no-op on the existing volume.
        await ok(p, 'VolumeDriver.Create', { Name: VOL, Opts: { size: '64M' } });
        await ok(p, 'VolumeDriver.Remove', { Name: VOL });
      });
  });
}

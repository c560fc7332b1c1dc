import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { loopsFor } from '../../src/system/loop-sysfs.js';
import { attachLoop, detachLoop } from '../../src/system/losetup.js';
import { mountDevice, unmount } from '../../src/system/mount.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { openService, serviceCases } from '../helpers/int-service.js';
import { cleanupTempDir } from '../helpers/kernel.js';
import { expectSwept, plantLeftovers } from '../helpers/leftovers.js';
import { storageAvailable } from '../helpers/tools.js';

const A = 'a'.repeat(64);

/** Restart tests: a second VolumeService over the same data root is the plugin started again. */
describe.runIf(storageAvailable())('VolumeService restart and reconcile', () => {
  const fresh = serviceCases('int-restart');

  it('keeps a mounted volume mounted with its holders, so Unmounts after the restart still count', async () => {
    const { service, root } = await fresh();
    await service.create('live', {}, silentLog);
    const mountPoint = await service.mount('live', A, silentLog);
    await service.mount('live', A, silentLog);
    await writeFile(join(mountPoint, 'x'), 'x');

    const restarted = openService(root);
    expect((await restarted.get('live')).Status).toMatchObject({ mounted: true, holders: 1 });
    await restarted.unmount('live', A, silentLog);
    expect(await mountAt(mountPoint)).toBeDefined();
    await restarted.unmount('live', A, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
  });

  it('drops the holders of a volume unmounted behind its back (reboot, manual umount)', async () => {
    const { service, layout, root } = await fresh();
    await service.create('gone', {}, silentLog);
    const mountPoint = await service.mount('gone', A, silentLog);
    await unmount(mountPoint);
    for (const device of await loopsFor(layout.volume('gone').image)) await detachLoop(device);

    const logs = captureLog();
    const restarted = openService(root, logs.log);
    expect((await restarted.get('gone')).Status).toMatchObject({
      mounted: false,
      holders: 0,
      loopDevice: null,
    });
    expect(logs.lines()).toContainEqual(expect.objectContaining({ volume: 'gone', level: 40 }));
    // Dropped for good: a third start finds no holders either, and the volume is usable.
    expect((await openService(root).get('gone')).Status.holders).toBe(0);
    await restarted.mount('gone', A, silentLog);
    await restarted.unmount('gone', A, silentLog);
  });

  it('releases a volume mounted with no holders (killed between mount and record)', async () => {
    const { service, layout, root } = await fresh();
    await service.create('orphan', {}, silentLog);
    const paths = layout.volume('orphan');
    const device = await attachLoop(paths.image, { directIo: true });
    await mkdir(paths.mountPoint);
    await mountDevice(device, paths.mountPoint, 'ext4', []);

    const restarted = openService(root);
    expect((await restarted.get('orphan')).Status).toMatchObject({
      mounted: false,
      holders: 0,
      loopDevice: null,
    });
    expect(await mountAt(paths.mountPoint)).toBeUndefined();
    expect(await loopsFor(paths.image)).toEqual([]);
  });

  it('detaches a loop device left attached but not mounted', async () => {
    const { service, layout, root } = await fresh();
    await service.create('attached', {}, silentLog);
    await attachLoop(layout.volume('attached').image, { directIo: true });

    await openService(root).start();
    expect(await loopsFor(layout.volume('attached').image)).toEqual([]);
  });

  it('sweeps leftovers of interrupted Creates, Removes and metadata writes', async () => {
    const { service, layout, root } = await fresh();
    await service.create('stays', {}, silentLog);
    await plantLeftovers(layout, 'stays');

    const logs = captureLog();
    const restarted = openService(root, logs.log);
    await restarted.start();
    await expectSwept(layout, 'stays');
    expect(await restarted.list()).toEqual([{ Name: 'stays', Mountpoint: '' }]);
    const swept = logs.lines().filter((l) => /leftover/.test(String(l.msg)));
    expect(swept.length).toBe(4);
  });

  it('reports a corrupt volume.json and does not serve that volume; the others still are', async () => {
    const { service, layout, root } = await fresh();
    await service.create('good', {}, silentLog);
    await service.create('bad', {}, silentLog);
    await writeFile(layout.volume('bad').meta, '{"version": 1, "name": "bad", "trunc');
    await service.create('renamed', {}, silentLog);
    const renamed = JSON.parse(await readFile(layout.volume('renamed').meta, 'utf8'));
    await writeFile(layout.volume('renamed').meta, JSON.stringify({ ...renamed, name: 'good' }));

    const logs = captureLog();
    const restarted = openService(root, logs.log);
    expect(await restarted.list()).toEqual([{ Name: 'good', Mountpoint: '' }]);
    await expect(restarted.get('bad')).rejects.toMatchObject({ kind: 'not-found' });
    await expect(restarted.mount('bad', A, silentLog)).rejects.toMatchObject({ kind: 'not-found' });
    const reported = logs.lines().filter((l) => l.level === 50 && /unreadable/.test(String(l.msg)));
    expect(reported.map((l) => l.volume).sort()).toEqual(['bad', 'renamed']);
    expect(reported.every((l) => String(l.path).startsWith(layout.volumes))).toBe(true);

    // Nothing is overwritten: a Create under the corrupt name fails and leaves the files for repair.
    await expect(restarted.create('bad', {}, silentLog)).rejects.toThrow(/cannot create volume bad/);
    expect((await stat(layout.volume('bad').image)).isFile()).toBe(true);
    expect(await readdir(layout.staging)).toEqual([]);

    const mountPoint = await restarted.mount('good', A, silentLog);
    await restarted.unmount('good', A, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
  });

  // An ID named like an Object.prototype member must not corrupt the count (volume left mounted,
  // volume.json unreadable at the next start).
  it('survives Mount and Unmount with the ID "toString"', async () => {
    const { service, root, dir: caseDir } = await fresh();
    try {
      await service.create('proto', {}, silentLog);
      const mountPoint = await service.mount('proto', 'toString', silentLog);
      await service.unmount('proto', 'toString', silentLog);
      expect(await mountAt(mountPoint)).toBeUndefined();
      expect((await openService(root).get('proto')).Status.holders).toBe(0);
    } finally {
      // Release anything a regression leaves mounted before afterEach checks.
      await cleanupTempDir(caseDir);
    }
  });

  it('finds a loop device attached in another mount namespace by inode, never attaching a second', async () => {
    // A managed plugin restarted by dockerd runs in a new mount namespace; devices its previous
    // instance attached, still used by containers, show backing paths that lead nowhere here.
    const { service, root, dir } = await fresh();
    await service.create('shared', {}, silentLog);
    const image = join(root, 'volumes', 'shared', 'disk.img');
    const other = join(dir, 'other-namespace');
    const script = [
      'set -e',
      `mkdir -p ${other}/root ${other}/mnt`,
      `mount --bind ${root} ${other}/root`,
      `dev=$(losetup --find --show ${other}/root/volumes/shared/disk.img)`,
      `mount "$dev" ${other}/mnt`,
      `echo written-elsewhere > ${other}/mnt/marker`,
      `umount --lazy ${other}/root`,
      'echo "$dev"',
      'exec sleep 600',
    ].join('\n');
    const holder = execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script]);
    try {
      const foreign = await firstLine(holder);
      expect(await loopsFor(image)).toEqual([foreign]);

      const mountPoint = await service.mount('shared', A, silentLog);
      expect((await service.get('shared')).Status.loopDevice).toBe(foreign);
      expect(await readFile(join(mountPoint, 'marker'), 'utf8')).toBe('written-elsewhere\n');
      const { stdout } = await execa('losetup', [
        '--noheadings',
        '--list',
        '--output',
        'NAME',
        '--associated',
        image,
      ]);
      expect(stdout.trim()).toBe(foreign);
      await service.unmount('shared', A, silentLog);
    } finally {
      holder.kill('SIGKILL');
      await holder.catch(() => undefined);
      // Only on failure is one still attached: its path is not under the test dir, so detach it here.
      if (!(await mountAt(join(root, 'volumes', 'shared', 'mnt')))) {
        for (const device of await loopsFor(image)) await detachLoop(device);
      }
    }
    // The other namespace is gone with its process, and with it the last user of the device.
    await expect.poll(() => loopsFor(image), { timeout: 5_000 }).toEqual([]);
  });
});

/** The first line a child prints on stdout. */
function firstLine(child: ReturnType<typeof execa>): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) resolve(text.split('\n')[0] ?? '');
    });
    child.catch(reject);
  });
}

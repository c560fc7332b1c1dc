import { readdir, readFile, writeFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { fakeServices } from '../helpers/fake-service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { expectSwept, plantLeftovers } from '../helpers/leftovers.js';

/** Start-up reconcile over a fake kernel: a second service on the same store is the plugin restarted. */

const A = 'a'.repeat(64);

const fresh = fakeServices();

describe('VolumeService start-up reconcile', () => {
  it('runs each backend start-up once, before any request is served', async () => {
    const { service, backends } = await fresh();
    await Promise.all([service.start(), service.list(), service.start()]);
    expect(backends.loop.callsOf('startup')).toEqual(['']);
    expect(backends.disk.callsOf('startup')).toEqual(['']);
  });

  it('keeps a volume in use mounted, with its holders', async () => {
    const first = await fresh();
    await first.service.create('live', {}, silentLog);
    await first.service.mount('live', A, silentLog);

    const logs = captureLog();
    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel, log: logs.log });
    await service.start();
    expect(backend.callsOf('deactivate')).toEqual([]);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ volume: 'live', holders: 1, msg: 'volume in use stays mounted' }),
    );
    expect((await service.get('live')).Status).toMatchObject({ mounted: true, holders: 1 });
  });

  it('drops the holders of a volume unmounted behind its back (reboot, manual umount), for good', async () => {
    const first = await fresh();
    await first.service.create('gone', {}, silentLog);
    await first.service.mount('gone', A, silentLog);
    first.kernel.forget(first.store.layout.volume('gone'));

    const logs = captureLog();
    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel, log: logs.log });
    expect((await service.get('gone')).Status).toMatchObject({
      mounted: false,
      holders: 0,
      loopDevice: null,
    });
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({
        volume: 'gone',
        level: 40,
        dropped: { [A]: 1 },
        msg: 'volume is no longer mounted (reboot or manual umount): dropping its holders',
      }),
    );
    // Nothing attached: nothing to release.
    expect(backend.callsOf('deactivate')).toEqual([]);
    expect(JSON.parse(await readFile(first.store.layout.volume('gone').holders, 'utf8'))).toEqual({});
    const third = await fresh({ dir: first.dir, kernel: first.kernel });
    expect((await third.service.get('gone')).Status.holders).toBe(0);
  });

  it('releases a volume mounted with no holders (killed between mount and record)', async () => {
    const first = await fresh();
    await first.service.create('orphan', {}, silentLog);
    first.kernel.mount(first.store.layout.volume('orphan'));

    const logs = captureLog();
    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel, log: logs.log });
    await service.start();
    expect(backend.callsOf('deactivate')).toEqual(['orphan']);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({
        volume: 'orphan',
        level: 40,
        msg: 'volume attached without holders (interrupted mount or unmount): releasing it',
      }),
    );
    expect((await service.get('orphan')).Status).toMatchObject({ mounted: false, loopDevice: null });
  });

  it('detaches a device left attached but not mounted', async () => {
    const first = await fresh();
    await first.service.create('attached', {}, silentLog);
    first.kernel.attach(first.store.layout.volume('attached'));

    const { service, backend, kernel } = await fresh({ dir: first.dir, kernel: first.kernel });
    await service.start();
    expect(backend.callsOf('deactivate')).toEqual(['attached']);
    expect(kernel.attached.size).toBe(0);
  });

  it('leaves an unmounted, unheld volume alone', async () => {
    const first = await fresh();
    await first.service.create('quiet', {}, silentLog);
    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel });
    await service.start();
    expect(backend.calls.map((c) => c.op)).toEqual(['startup', 'inspect']);
  });

  it('serves a volume as recorded when reconciling it fails, and reconciles the others', async () => {
    const first = await fresh();
    await first.service.create('a', {}, silentLog);
    await first.service.create('b', {}, silentLog);
    for (const name of ['a', 'b']) first.kernel.mount(first.store.layout.volume(name));

    const logs = captureLog();
    const { service, backend, kernel, store } = await fresh({
      dir: first.dir,
      kernel: first.kernel,
      log: logs.log,
    });
    backend.fail('deactivate', 'EBUSY');
    await service.start();
    expect(backend.callsOf('deactivate').sort()).toEqual(['a', 'b']);
    const failed = logs.lines().filter((l) => l.level === 50);
    expect(failed).toEqual([
      expect.objectContaining({
        msg: 'could not reconcile volume with the kernel; it is served as recorded',
      }),
    ]);
    // One of the two is still mounted (its release failed); the other was released.
    expect(kernel.mounted.size).toBe(1);
    expect((await service.list()).map((v) => v.Name)).toEqual(['a', 'b']);
    const stuck = String(failed[0]?.volume);
    expect(kernel.mounted.has(store.layout.volume(stuck).mountPoint)).toBe(true);
  });

  it('sweeps what interrupted Creates, Removes and metadata writes left', async () => {
    const first = await fresh();
    const { layout } = first.store;
    await first.service.create('stays', {}, silentLog);
    await plantLeftovers(layout, 'stays');

    const logs = captureLog();
    const { service } = await fresh({ dir: first.dir, kernel: first.kernel, log: logs.log });
    await service.start();
    await expectSwept(layout, 'stays');
    expect(await service.list()).toEqual([{ Name: 'stays', Mountpoint: '' }]);
    expect(logs.lines().filter((l) => /leftover/.test(String(l.msg)))).toHaveLength(4);
  });

  it('reports a corrupt volume.json and does not serve that volume; the others still are', async () => {
    const first = await fresh();
    const { layout } = first.store;
    await first.service.create('good', {}, silentLog);
    await first.service.create('bad', {}, silentLog);
    await writeFile(layout.volume('bad').meta, '{"version": 1, "name": "bad", "trunc');
    await first.service.create('renamed', {}, silentLog);
    const renamed = JSON.parse(await readFile(layout.volume('renamed').meta, 'utf8'));
    await writeFile(layout.volume('renamed').meta, JSON.stringify({ ...renamed, name: 'good' }));

    const logs = captureLog();
    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel, log: logs.log });
    expect(await service.list()).toEqual([{ Name: 'good', Mountpoint: '' }]);
    await expect(service.get('bad')).rejects.toMatchObject({ kind: 'not-found' });
    await expect(service.mount('bad', A, silentLog)).rejects.toMatchObject({ kind: 'not-found' });
    expect([...service.unreadable.keys()].sort()).toEqual(['bad', 'renamed']);
    const reported = logs.lines().filter((l) => l.level === 50 && /unreadable/.test(String(l.msg)));
    expect(reported.map((l) => l.volume).sort()).toEqual(['bad', 'renamed']);

    // Nothing is overwritten: a Create under the corrupt name fails and leaves the files for repair.
    await expect(service.create('bad', {}, silentLog)).rejects.toThrow(/cannot create volume bad/);
    expect((await readdir(layout.volume('bad').dir)).sort()).toEqual(['disk.img', 'volume.json']);
    expect(await readdir(layout.staging)).toEqual([]);
    expect(backend.callsOf('provision')).toHaveLength(1);
  });

  it('keeps counting the disk of a disk volume whose record is unreadable as held', async () => {
    const first = await fresh();
    await first.service.create('d', { backend: 'disk' }, silentLog);
    const held = first.backends.disk.heldDisks();
    expect(held).toHaveLength(1);
    await writeFile(first.store.layout.volume('d').meta, 'not json');

    const { service, backends } = await fresh({ dir: first.dir, kernel: first.kernel });
    await service.start();
    expect(backends.disk.heldDisks()).toEqual(held);
  });
});

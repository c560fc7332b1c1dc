import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { describe, expect, it, vi } from 'vitest';
import { FilesystemDamaged } from '../../src/core/errors.js';
import { errnoError } from '../helpers/fake-backend.js';
import { fakeServices } from '../helpers/fake-service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';

/** The VolumeService's rules over a fake backend: no root, no loop devices, milliseconds each. */

const MiB = 1024 * 1024;
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

const fresh = fakeServices();

describe('VolumeService holders', () => {
  it('keeps a volume mounted until the last of two IDs unmounts', async () => {
    const { service, backend, store } = await fresh();
    await service.create('two', {}, silentLog);
    const mountPoint = await service.mount('two', A, silentLog);
    expect(mountPoint).toBe(store.layout.volume('two').mountPoint);
    expect(await service.mount('two', B, silentLog)).toBe(mountPoint);
    expect((await service.get('two')).Status).toMatchObject({ mounted: true, holders: 2 });

    await service.unmount('two', A, silentLog);
    expect(backend.callsOf('deactivate')).toEqual([]);
    expect(await service.path('two')).toBe(mountPoint);
    await service.unmount('two', B, silentLog);
    expect(backend.callsOf('deactivate')).toEqual(['two']);
    expect((await service.get('two')).Status).toMatchObject({ mounted: false, holders: 0, loopDevice: null });
    expect(await service.path('two')).toBe('');
  });

  it('counts Mounts per ID: the same ID twice needs two Unmounts', async () => {
    const { service, backend } = await fresh();
    await service.create('counted', {}, silentLog);
    await service.mount('counted', A, silentLog);
    await service.mount('counted', A, silentLog); // docker cp on the running container
    await service.unmount('counted', A, silentLog);
    expect(backend.callsOf('deactivate')).toEqual([]);
    await service.unmount('counted', A, silentLog);
    expect(backend.callsOf('deactivate')).toEqual(['counted']);
  });

  it('treats Mounts without ID as one holder: 3 Mounts, 1 Unmount unmounts (Mesos counts itself)', async () => {
    const { service } = await fresh();
    await service.create('mesos', {}, silentLog);
    for (let i = 0; i < 3; i++) await service.mount('mesos', undefined, silentLog);
    expect((await service.get('mesos')).Status.holders).toBe(1);
    await service.unmount('mesos', undefined, silentLog);
    expect((await service.get('mesos')).Status).toMatchObject({ mounted: false, holders: 0 });
  });

  it('accepts Unmount from an ID that holds nothing, without releasing other holders', async () => {
    const { service, backend } = await fresh();
    await service.create('other', {}, silentLog);
    await service.mount('other', A, silentLog);
    const logs = captureLog();
    await service.unmount('other', B, logs.log);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({
        level: 40,
        id: B,
        msg: 'unmount from an ID that does not hold the volume; nothing to release',
      }),
    );
    expect(backend.callsOf('deactivate')).toEqual([]);
    expect((await service.get('other')).Status).toMatchObject({ mounted: true, holders: 1 });
    await service.unmount('other', A, silentLog);
    expect((await service.get('other')).Status.mounted).toBe(false);
  });

  it('releases an unheld volume on an unknown Unmount (retrying a failed unmount)', async () => {
    const { service, backend } = await fresh();
    await service.create('idle', {}, silentLog);
    await service.unmount('idle', B, silentLog);
    expect(backend.callsOf('deactivate')).toEqual(['idle']);
  });

  it('refuses to remove a held volume, naming its holders, and removes it once unmounted', async () => {
    const { service, backend, store } = await fresh();
    await service.create('busy', {}, silentLog);
    await service.mount('busy', A, silentLog);
    await service.mount('busy', A, silentLog);
    await service.mount('busy', undefined, silentLog);
    const refused = service.remove('busy', silentLog);
    await expect(refused).rejects.toMatchObject({ kind: 'conflict' });
    await expect(refused).rejects.toThrow(
      `volume busy is in use by mount ID ${A.slice(0, 12)} (x2), a client without mount ID (dvdcli/Mesos): stop the containers or tasks using it, then remove it`,
    );
    expect(backend.callsOf('deactivate')).toEqual([]);
    expect(backend.callsOf('release')).toEqual([]);
    expect((await service.get('busy')).Status.mounted).toBe(true);

    await service.unmount('busy', A, silentLog);
    await service.unmount('busy', A, silentLog);
    await service.unmount('busy', undefined, silentLog);
    await service.remove('busy', silentLog);
    expect(backend.callsOf('release')).toEqual(['busy']);
    expect(existsSync(store.layout.volume('busy').dir)).toBe(false);
    expect(await service.list()).toEqual([]);
    await expect(service.get('busy')).rejects.toMatchObject({ kind: 'not-found' });
    await service.idle();
    expect(await readdir(store.layout.trash)).toEqual([]);
  });

  it('keeps holders across a restart on the same store and kernel, so Unmounts still count', async () => {
    const first = await fresh();
    await first.service.create('live', {}, silentLog);
    await first.service.mount('live', A, silentLog);
    await first.service.mount('live', A, silentLog);
    await first.service.mount('live', B, silentLog);

    const { service, backend } = await fresh({ dir: first.dir, kernel: first.kernel });
    expect((await service.get('live')).Status).toMatchObject({ mounted: true, holders: 2 });
    expect(backend.callsOf('deactivate')).toEqual([]);
    await service.unmount('live', B, silentLog);
    await service.unmount('live', A, silentLog);
    expect((await service.get('live')).Status.mounted).toBe(true);
    await service.unmount('live', A, silentLog);
    expect(backend.callsOf('deactivate')).toEqual(['live']);
  });

  it('survives Mount and Unmount with the ID "toString"', async () => {
    const first = await fresh();
    await first.service.create('proto', {}, silentLog);
    await first.service.mount('proto', 'toString', silentLog);
    await first.service.unmount('proto', 'toString', silentLog);
    expect((await first.service.get('proto')).Status).toMatchObject({ mounted: false, holders: 0 });
    const restarted = await fresh({ dir: first.dir, kernel: first.kernel });
    expect((await restarted.service.get('proto')).Status.holders).toBe(0);
  });
});

describe('VolumeService refusals', () => {
  it('does not provision again on Create of an existing name, and ignores the new options', async () => {
    const { service, backend } = await fresh();
    await service.create('keep', { size: '64M' }, silentLog);
    const logs = captureLog();
    await service.create('keep', { size: '300M', fs: 'xfs', sparse: 'false' }, logs.log);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({ msg: 'volume exists; create is a no-op and its options are ignored' }),
    );
    expect(backend.callsOf('provision')).toHaveLength(1);
    expect((await service.get('keep')).Status).toMatchObject({ size: 64 * MiB, fs: 'ext4', sparse: true });
  });

  it('makes one volume out of 20 concurrent Creates of the same name: the first wins', async () => {
    const { service, backend, store } = await fresh();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        service.create('race', { size: i % 2 ? '64M' : '128M' }, silentLog),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(backend.callsOf('provision')).toHaveLength(1);
    expect(await service.list()).toEqual([{ Name: 'race', Mountpoint: '' }]);
    expect(await readdir(store.layout.staging)).toEqual([]);
    expect((await service.get('race')).Status.size).toBe(128 * MiB);
  });

  it.each([
    [{ fs: 'btrfs' }, 'cannot create volume bad: option fs: fs must be ext4 or xfs'],
    [{ sparse: 'yes' }, 'cannot create volume bad: option sparse: sparse must be true or false'],
    [{ size: '1M' }, 'cannot create volume bad: size 1M is below the minimum of 16M for ext4: ask for more'],
    [{ size: '17T' }, /^cannot create volume bad: size "17T" is larger than the maximum of 16T/],
    [{ size: 64 }, /^cannot create volume bad: .*value must be a string/],
    ['size=64M', 'cannot create volume bad: Opts must be an object of string options'],
    [{ from: 'bad' }, /^cannot create volume bad from itself: /],
  ])('refuses bad options %j with a 400 and provisions nothing', async (opts, message) => {
    const { service, backend, store } = await fresh();
    const refused = service.create('bad', opts, silentLog);
    await expect(refused).rejects.toMatchObject({ kind: 'invalid' });
    await expect(refused).rejects.toThrow(message);
    expect(backend.callsOf('provision')).toEqual([]);
    await expect(service.get('bad')).rejects.toMatchObject({ kind: 'not-found' });
    expect(await readdir(store.layout.staging)).toEqual([]);
  });

  it('refuses a clone when no snapshot room provides clones', async () => {
    const { service, backend } = await fresh();
    await service.create('src', {}, silentLog);
    const refused = service.create('copy', { from: 'src' }, silentLog);
    await expect(refused).rejects.toMatchObject({ kind: 'invalid' });
    await expect(refused).rejects.toThrow(
      'cannot create volume copy: clones (from=) are not available in this daemon',
    );
    expect(backend.callsOf('provision')).toHaveLength(1);
  });

  it('answers 404 with what to do for every request on an unknown volume', async () => {
    const { service, backend } = await fresh();
    const notFound = {
      kind: 'not-found',
      message: 'volume ghost does not exist: create it first (docker volume create -d loopvol ghost)',
    };
    await expect(service.get('ghost')).rejects.toMatchObject(notFound);
    await expect(service.path('ghost')).rejects.toMatchObject(notFound);
    await expect(service.mount('ghost', A, silentLog)).rejects.toMatchObject(notFound);
    await expect(service.unmount('ghost', A, silentLog)).rejects.toMatchObject(notFound);
    await expect(service.remove('ghost', silentLog)).rejects.toMatchObject(notFound);
    await expect(service.resize('ghost', '1G', silentLog)).rejects.toMatchObject(notFound);
    expect(backend.calls.filter((c) => c.op !== 'startup')).toEqual([]);
  });

  it('refuses to shrink a volume, and a resize to a bad size', async () => {
    const { service, backend } = await fresh();
    await service.create('big', { size: '128M' }, silentLog);
    await expect(service.resize('big', '64M', silentLog)).rejects.toMatchObject({
      kind: 'invalid',
      message:
        'cannot resize volume big to 64M: it is 128M and shrinking could lose data; copy the data to a smaller volume instead',
    });
    await expect(service.resize('big', 'lots', silentLog)).rejects.toMatchObject({
      kind: 'invalid',
      message: expect.stringMatching(/^cannot resize volume big: /),
    });
    expect(backend.callsOf('grow')).toEqual([]);
    await service.resize('big', '256M', silentLog);
    expect(backend.callsOf('grow')).toEqual(['big']);
    expect((await service.get('big')).Status.size).toBe(256 * MiB);
  });
});

describe('VolumeService when the backend fails', () => {
  it('records and leaks nothing when provisioning fails, and names ENOSPC as the host being full', async () => {
    const { service, backend, store } = await fresh();
    backend.fail('provision', 'ENOSPC');
    const failed = service.create('full', {}, silentLog);
    await expect(failed).rejects.toMatchObject({ kind: 'no-space' });
    await expect(failed).rejects.toThrow(
      'cannot create volume full: no space left on the host filesystem holding the data root: free space there and try again',
    );
    expect(await service.list()).toEqual([]);
    expect(await readdir(store.layout.volumes)).toEqual([]);
    expect(await readdir(store.layout.staging)).toEqual([]);
    expect((await service.figures(false)).provisionedBytes).toBe(0);

    // Nothing half-made blocks a retry.
    await service.create('full', {}, silentLog);
    expect(await service.list()).toEqual([{ Name: 'full', Mountpoint: '' }]);
  });

  it('passes any other provisioning failure on in its message', async () => {
    const { service, backend } = await fresh();
    backend.fail('provision', new Error('mkfs.ext4 exited with 1'));
    await expect(service.create('x', {}, silentLog)).rejects.toThrow(
      'cannot create volume x: mkfs.ext4 exited with 1',
    );
  });

  it('records no holder when activation fails, and mounts on the next try', async () => {
    const { service, backend } = await fresh();
    await service.create('flaky', {}, silentLog);
    backend.fail('activate', 'EIO');
    await expect(service.mount('flaky', A, silentLog)).rejects.toMatchObject({
      kind: 'internal',
      message: 'cannot mount volume flaky: EIO: fake activate failed',
    });
    expect((await service.get('flaky')).Status).toMatchObject({ holders: 0 });
    await service.mount('flaky', A, silentLog);
    expect((await service.get('flaky')).Status).toMatchObject({ mounted: true, holders: 1 });
  });

  it('refuses to mount a damaged filesystem and says how to repair it', async () => {
    const { service, backend } = await fresh();
    await service.create('broken', {}, silentLog);
    backend.fail('activate', new FilesystemDamaged('bad superblock', ['e2fsck: bad magic']));
    await expect(service.mount('broken', A, silentLog)).rejects.toThrow(
      'cannot mount volume broken: its filesystem is damaged (bad superblock): run "loopvol fsck broken --repair" while no container uses it, then mount again',
    );
    expect((await service.get('broken')).Status.holders).toBe(0);
  });

  it('releases the holder of a busy unmount, hints at fuser, and unmounts on the next Unmount', async () => {
    const { service, backend, store } = await fresh();
    await service.create('busy', {}, silentLog);
    const mountPoint = await service.mount('busy', A, silentLog);
    backend.fail('deactivate', 'EBUSY');
    const failed = service.unmount('busy', A, silentLog);
    await expect(failed).rejects.toThrow(
      `volume busy has no holders left but could not be unmounted: EBUSY: fake deactivate failed; find what still uses it with "fuser -vm ${mountPoint}"; loopvol retries on the next Unmount or Remove`,
    );
    expect((await service.get('busy')).Status).toMatchObject({ mounted: true, holders: 0 });

    // Remove must not delete anything while the filesystem is still mounted.
    backend.fail('deactivate', 'EBUSY');
    await expect(service.remove('busy', silentLog)).rejects.toThrow(
      'cannot remove volume busy: EBUSY: fake deactivate failed',
    );
    expect(backend.callsOf('release')).toEqual([]);
    expect(existsSync(store.layout.volume('busy').image)).toBe(true);

    await service.unmount('busy', A, silentLog);
    expect((await service.get('busy')).Status.mounted).toBe(false);
    await service.remove('busy', silentLog);
  });

  it('keeps the volume when releasing its storage fails', async () => {
    const { service, backend, store } = await fresh();
    await service.create('kept', {}, silentLog);
    backend.fail('release', 'EIO');
    await expect(service.remove('kept', silentLog)).rejects.toThrow(
      'cannot remove volume kept: EIO: fake release failed',
    );
    expect(await service.list()).toEqual([{ Name: 'kept', Mountpoint: '' }]);
    expect(existsSync(store.layout.volume('kept').meta)).toBe(true);
    await service.remove('kept', silentLog);
    expect(await service.list()).toEqual([]);
  });

  it('keeps the recorded size when growing fails, and says a repeat completes it', async () => {
    const { service, backend } = await fresh();
    await service.create('grow', {}, silentLog);
    backend.fail('grow', errnoError('EIO', 'resize2fs'));
    await expect(service.resize('grow', '128M', silentLog)).rejects.toThrow(
      'cannot resize volume grow: EIO: fake resize2fs failed; running the same resize again completes it',
    );
    expect((await service.get('grow')).Status.size).toBe(64 * MiB);
    await service.resize('grow', '128M', silentLog);
    expect((await service.get('grow')).Status.size).toBe(128 * MiB);
  });
});

describe('VolumeService when recording fails', () => {
  it('undoes the activation of a Mount it cannot record, unless earlier holders use it', async () => {
    const { service, backend, store, kernel } = await fresh();
    await service.create('rec', {}, silentLog);
    const { holders } = store.layout.volume('rec');
    // A directory where holders.json goes: its atomic rename fails, as on a full or broken host.
    await mkdir(holders);
    await expect(service.mount('rec', A, silentLog)).rejects.toThrow(
      /^cannot mount volume rec: recording the mount failed: /,
    );
    expect(backend.callsOf('deactivate')).toEqual(['rec']);
    expect(kernel.mounted.size).toBe(0);

    await rm(holders, { recursive: true });
    await service.mount('rec', A, silentLog);
    await rm(holders);
    await mkdir(holders);
    await expect(service.mount('rec', B, silentLog)).rejects.toThrow(/recording the mount failed/);
    expect(backend.callsOf('deactivate')).toEqual(['rec']);
    expect((await service.get('rec')).Status).toMatchObject({ mounted: true, holders: 1 });
  });

  it('releases on Unmount even when the release cannot be recorded', async () => {
    const { service, backend, store } = await fresh();
    await service.create('rel', {}, silentLog);
    await service.mount('rel', A, silentLog);
    const { holders } = store.layout.volume('rel');
    await rm(holders);
    await mkdir(holders);
    const logs = captureLog();
    await service.unmount('rel', A, logs.log);
    expect(logs.lines()).toContainEqual(
      expect.objectContaining({
        level: 50,
        msg: 'could not record the unmount (is the host filesystem full?); releasing anyway, a restart re-derives the holders from the kernel',
      }),
    );
    expect(backend.callsOf('deactivate')).toEqual(['rel']);
    expect((await service.get('rel')).Status).toMatchObject({ mounted: false, holders: 0 });
  });
});

describe('VolumeService serialisation', () => {
  it('runs an Unmount after the Mount of the same volume under way, never inside it', async () => {
    const { service, backend } = await fresh();
    await service.create('serial', {}, silentLog);
    const open = backend.hold('activate');
    const mounting = service.mount('serial', A, silentLog);
    await vi.waitFor(() => expect(backend.callsOf('activate')).toHaveLength(1));
    const unmounting = service.unmount('serial', A, silentLog);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(backend.callsOf('deactivate')).toEqual([]);
    open();
    await mounting;
    await unmounting;
    expect(backend.callsOf('deactivate')).toEqual(['serial']);
    expect((await service.get('serial')).Status).toMatchObject({ mounted: false, holders: 0 });
  });

  it('serves other volumes while one is inside the backend', async () => {
    const { service, backend } = await fresh();
    await service.create('slow', {}, silentLog);
    await service.create('quick', {}, silentLog);
    const open = backend.hold('activate');
    const mounting = service.mount('slow', A, silentLog);
    await vi.waitFor(() => expect(backend.callsOf('activate')).toHaveLength(1));
    expect((await service.get('quick')).Status.mounted).toBe(false);
    await service.remove('quick', silentLog);
    open();
    await mounting;
  });
});

describe('VolumeService disk volumes', () => {
  it('tells the backend which disks are held, so no Create takes one twice', async () => {
    const { service, backends } = await fresh();
    await service.create('d1', { backend: 'disk' }, silentLog);
    expect(backends.disk.heldDisks()).toEqual([
      { volume: 'd1', disk: '/dev/disk/by-id/fake-disk-0', fsUuid: expect.any(String) },
    ]);
    expect(backends.loop.callsOf('provision')).toEqual([]);
    expect((await service.get('d1')).Status).toMatchObject({
      backend: 'disk',
      disk: '/dev/disk/by-id/fake-disk-0',
    });
    await service.remove('d1', silentLog);
    expect(backends.disk.heldDisks()).toEqual([]);
  });
});

import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { fileSpace, filesystemUsage } from '../../src/system/fsstat.js';
import { loopsFor } from '../../src/system/loop-sysfs.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { unzeroedInodeTables } from '../helpers/ext4.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { GiB, MiB, openService, serviceCases } from '../helpers/int-service.js';
import { storageAvailable } from '../helpers/tools.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

/** The smallest size each filesystem accepts, to keep formatting and filling fast. */
const SMALL = { ext4: '64M', xfs: '300M' } as const;

describe.runIf(storageAvailable())('VolumeService on the real kernel', () => {
  const fresh = serviceCases('int-service');

  it('formats with 4 KiB blocks, no reserved blocks, fast commits and a checksum seed where the kernel has them', async () => {
    const { service, layout } = await fresh();
    await service.create('fc', { fs: 'ext4', size: SMALL.ext4 }, silentLog);
    const { stdout } = await execa('dumpe2fs', ['-h', layout.volume('fc').image], { stderr: 'ignore' });
    const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(stdout)?.[1];
    expect(field('Block size')).toBe('4096');
    expect(field('Reserved block count')).toBe('0');
    const features = field('Filesystem features')?.split(' ') ?? [];
    for (const feature of ['fast_commit', 'metadata_csum_seed']) {
      expect(features.includes(feature)).toBe(existsSync(`/sys/fs/ext4/features/${feature}`));
    }
    // An fsync'd write through the fast-commit path is there after a remount.
    const mountPoint = await service.mount('fc', A, silentLog);
    const handle = await open(join(mountPoint, 'synced'), 'w');
    await handle.write('durable');
    await handle.sync();
    await handle.close();
    await service.unmount('fc', A, silentLog);
    await service.mount('fc', A, silentLog);
    expect(await readFile(join(mountPoint, 'synced'), 'utf8')).toBe('durable');
    await service.unmount('fc', A, silentLog);
  });

  describe.each(['ext4', 'xfs'] as const)('%s', (fs) => {
    it('creates a volume whose files survive unmount and remount', async () => {
      const { service, layout } = await fresh();
      await service.create('data', { fs, size: SMALL[fs] }, silentLog);
      const mountPoint = await service.mount('data', A, silentLog);
      expect(mountPoint).toBe(layout.volume('data').mountPoint);
      expect((await mountAt(mountPoint))?.fsType).toBe(fs);
      await writeFile(join(mountPoint, 'kept.txt'), 'hello');
      await service.unmount('data', A, silentLog);
      expect(await mountAt(mountPoint)).toBeUndefined();

      await service.mount('data', B, silentLog);
      expect(await readFile(join(mountPoint, 'kept.txt'), 'utf8')).toBe('hello');
      await service.unmount('data', B, silentLog);
    });

    it('enforces the size: writing past it fails with ENOSPC and used is about the size', async () => {
      const { service } = await fresh();
      await service.create('full', { fs, size: SMALL[fs] }, silentLog);
      const mountPoint = await service.mount('full', A, silentLog);
      const size = (await service.get('full')).Status.size as number;
      const file = join(mountPoint, 'fill');
      await expect(writeFile(file, Buffer.alloc(size, 0x61))).rejects.toMatchObject({ code: 'ENOSPC' });
      expect((await stat(file)).size).toBeLessThanOrEqual(size);
      const { used, free } = (await service.get('full')).Status as { used: number; free: number };
      // Filesystem metadata (journal, xfs log) takes the rest: used stays within the size, near it.
      expect(used).toBeLessThanOrEqual(size);
      expect(used).toBeGreaterThan(size * 0.75);
      expect(free).toBeLessThan(size * 0.02);
      await service.unmount('full', A, silentLog);
    });

    it('allocates little for a sparse image', async () => {
      const { service, layout } = await fresh();
      await service.create('thin', { fs, size: '1G' }, silentLog);
      const allocated = fileSpace(layout.volume('thin').image).allocatedBytes;
      expect((await stat(layout.volume('thin').image)).size).toBe(GiB);
      // ext4 with lazy init writes well under a megabyte; mkfs.xfs zeroes its 64M log.
      expect(allocated).toBeLessThan(fs === 'ext4' ? 16 * MiB : 128 * MiB);
      expect((await service.get('thin')).Status).toMatchObject({ sparse: true, allocated });
    });

    it('keeps a sparse=false image fully allocated (mkfs must not punch holes)', async () => {
      const { service, layout } = await fresh();
      await service.create('thick', { fs, size: SMALL[fs], sparse: 'false' }, silentLog);
      const { size, allocated, sparse } = (await service.get('thick')).Status as {
        size: number;
        allocated: number;
        sparse: boolean;
      };
      expect(sparse).toBe(false);
      expect(allocated).toBeGreaterThanOrEqual(size);
      expect(fileSpace(layout.volume('thick').image).allocatedBytes).toBe(allocated);
    });

    it('keeps a sparse=false image allocated once mounted: no lazy inode-table init', async () => {
      const { service, layout } = await fresh();
      await service.create('thick', { fs, size: SMALL[fs], sparse: 'false' }, silentLog);
      const image = layout.volume('thick').image;
      // The kernel's lazy init would zero these through the loop device: hole punches.
      if (fs === 'ext4') expect(await unzeroedInodeTables(image)).toBe(0);
      const mountPoint = await service.mount('thick', A, silentLog);
      if (fs === 'ext4') expect((await mountAt(mountPoint))?.superOptions).toContain('noinit_itable');
      await service.unmount('thick', A, silentLog);
      expect(fileSpace(image).allocatedBytes).toBeGreaterThanOrEqual((await stat(image)).size);
    });

    it('gives a preallocated image back the space a host fstrim punched out, at the next Mount', async () => {
      const { service, layout } = await fresh();
      await service.create('trimmed', { fs, size: SMALL[fs], sparse: 'false' }, silentLog);
      const mountPoint = await service.mount('trimmed', A, silentLog);
      await writeFile(join(mountPoint, 'kept'), 'data');
      await service.unmount('trimmed', A, silentLog);
      const image = layout.volume('trimmed').image;
      const { size } = await stat(image);
      // What fstrim on the mounted volume does to the image: holes where the filesystem is free.
      // Both filesystems keep metadata at group/AG starts and the xfs log mid-device; 3/8 in, past
      // the start of its group or AG, is free space on a fresh filesystem.
      const offset = (size * 3) / 8 + MiB;
      await execa('fallocate', [
        '--punch-hole',
        '--offset',
        String(offset),
        '--length',
        String(4 * MiB),
        image,
      ]);
      // (An extent-tree block or two counts towards the file's blocks too.)
      expect(fileSpace(image).allocatedBytes).toBeLessThan(size - 3 * MiB);

      const logs = captureLog();
      await service.mount('trimmed', B, logs.log);
      expect(fileSpace(image).allocatedBytes).toBeGreaterThanOrEqual(size);
      expect(await readFile(join(mountPoint, 'kept'), 'utf8')).toBe('data');
      expect(logs.lines()).toContainEqual(
        expect.objectContaining({
          level: 40,
          refilledBytes: expect.toSatisfy((n: number) => n > 3 * MiB && n <= 4 * MiB),
          msg: expect.stringMatching(/fstrim/),
        }),
      );
      await service.unmount('trimmed', B, silentLog);
    });

    it('gives the first mount an empty root with the asked owner and mode', async () => {
      const { service } = await fresh();
      await service.create(
        'owned',
        { fs, size: SMALL[fs], uid: '1000', gid: '1001', mode: '2770' },
        silentLog,
      );
      const mountPoint = await service.mount('owned', A, silentLog);
      expect(await readdir(mountPoint)).toEqual([]);
      const root = await stat(mountPoint);
      expect({ uid: root.uid, gid: root.gid, mode: root.mode & 0o7777 }).toEqual({
        uid: 1000,
        gid: 1001,
        mode: 0o2770,
      });
      await service.unmount('owned', A, silentLog);
    });
  });

  it('leaves the root alone after the first mount (the container owns it from then on)', async () => {
    const { service } = await fresh();
    await service.create('later', { mode: '0700' }, silentLog);
    const mountPoint = await service.mount('later', A, silentLog);
    await mkdir(join(mountPoint, 'lost+found'));
    await writeFile(join(mountPoint, 'x'), '');
    await service.unmount('later', A, silentLog);
    await service.mount('later', A, silentLog);
    expect((await readdir(mountPoint)).sort()).toEqual(['lost+found', 'x']);
    await service.unmount('later', A, silentLog);
  });

  it('does not reformat on Create of an existing name, and ignores the new options', async () => {
    const { service } = await fresh();
    await service.create('keep', { size: '64M' }, silentLog);
    const mountPoint = await service.mount('keep', A, silentLog);
    await writeFile(join(mountPoint, 'precious'), 'data');
    await service.unmount('keep', A, silentLog);

    await service.create('keep', { size: '300M', fs: 'xfs', sparse: 'false' }, silentLog);
    expect((await service.get('keep')).Status).toMatchObject({ size: 64 * MiB, fs: 'ext4', sparse: true });
    await service.mount('keep', A, silentLog);
    expect(await readFile(join(mountPoint, 'precious'), 'utf8')).toBe('data');
    await service.unmount('keep', A, silentLog);
  });

  it('refuses to remove a mounted volume, naming its holders, and removes it once unmounted', async () => {
    const { service, layout } = await fresh();
    await service.create('busy', {}, silentLog);
    await service.mount('busy', A, silentLog);
    await service.mount('busy', A, silentLog);
    await service.mount('busy', undefined, silentLog);
    const refused = service.remove('busy', silentLog);
    await expect(refused).rejects.toMatchObject({ kind: 'conflict' });
    await expect(refused).rejects.toThrow(`mount ID ${A.slice(0, 12)} (x2)`);
    await expect(refused).rejects.toThrow(/without mount ID/);
    expect((await service.get('busy')).Status.mounted).toBe(true);

    await service.unmount('busy', A, silentLog);
    await service.unmount('busy', A, silentLog);
    await service.unmount('busy', undefined, silentLog);
    await service.remove('busy', silentLog);
    await expect(stat(layout.volume('busy').dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await service.list()).toEqual([]);
    await expect(service.get('busy')).rejects.toMatchObject({ kind: 'not-found' });
    await service.idle();
    expect(await readdir(layout.trash)).toEqual([]);
  });

  it('counts Mounts per ID: the same ID twice needs two Unmounts', async () => {
    const { service } = await fresh();
    await service.create('counted', {}, silentLog);
    const mountPoint = await service.mount('counted', A, silentLog);
    await service.mount('counted', A, silentLog); // docker cp on the running container
    await service.mount('counted', B, silentLog);
    expect((await service.get('counted')).Status.holders).toBe(2);

    await service.unmount('counted', A, silentLog);
    await service.unmount('counted', B, silentLog);
    expect(await mountAt(mountPoint)).toBeDefined();
    await service.unmount('counted', A, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
    expect((await service.get('counted')).Status).toMatchObject({ holders: 0, loopDevice: null });
  });

  it('treats Mounts without ID as one holder: 3 Mounts, 1 Unmount unmounts (Mesos counts itself)', async () => {
    const { service } = await fresh();
    await service.create('mesos', {}, silentLog);
    const mountPoint = await service.mount('mesos', undefined, silentLog);
    expect(await service.mount('mesos', undefined, silentLog)).toBe(mountPoint);
    await service.mount('mesos', undefined, silentLog);
    await service.unmount('mesos', undefined, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
    expect((await service.get('mesos')).Status).toMatchObject({ mounted: false, holders: 0 });
  });

  it('accepts Unmount from an ID that holds nothing, without releasing other holders', async () => {
    const { service } = await fresh();
    await service.create('other', {}, silentLog);
    await service.unmount('other', B, silentLog);
    await service.unmount('other', undefined, silentLog);
    const mountPoint = await service.mount('other', A, silentLog);
    await service.unmount('other', B, silentLog);
    expect(await mountAt(mountPoint)).toBeDefined();
    await service.unmount('other', A, silentLog);
  });

  it('reports a busy unmount with a fuser hint and releases on the next Unmount or Remove', async () => {
    const { service, layout } = await fresh();
    await service.create('busy', {}, silentLog);
    const mountPoint = await service.mount('busy', A, silentLog);
    const handle = await open(join(mountPoint, 'open-file'), 'w');
    try {
      const failed = service.unmount('busy', A, silentLog);
      await expect(failed).rejects.toThrow(`fuser -vm ${mountPoint}`);
      expect((await service.get('busy')).Status).toMatchObject({ mounted: true, holders: 0 });
      // Remove must not delete anything while the filesystem is still mounted.
      await expect(service.remove('busy', silentLog)).rejects.toThrow(/cannot remove volume busy/);
      expect((await stat(layout.volume('busy').image)).isFile()).toBe(true);
    } finally {
      await handle.close();
    }
    await service.unmount('busy', A, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
    await service.remove('busy', silentLog);
  });

  it('leaves no loop device behind when a Mount fails', async () => {
    const { service, layout } = await fresh();
    await service.create('broken', {}, silentLog);
    const image = layout.volume('broken').image;
    const handle = await open(image, 'r+');
    await handle.write(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0); // wipe the primary superblock
    await handle.close();
    await expect(service.mount('broken', A, silentLog)).rejects.toThrow(/cannot mount volume broken/);
    expect(await loopsFor(image)).toEqual([]);
    expect((await service.get('broken')).Status).toMatchObject({ mounted: false, holders: 0 });
  });

  it('refuses to mount an image replaced by a symlink', async () => {
    const { service, layout } = await fresh();
    await service.create('linked', {}, silentLog);
    const { image } = layout.volume('linked');
    await rename(image, `${image}.real`);
    await symlink(`${image}.real`, image);
    await expect(service.mount('linked', A, silentLog)).rejects.toThrow(/not a plain file/);
    expect(await loopsFor(`${image}.real`)).toEqual([]);
  });

  it('reports every Status field, unmounted and mounted', async () => {
    const { service, layout } = await fresh();
    await service.create('status', { size: '64M', uid: '7', gid: '8', mode: '0750' }, silentLog);
    const idle = await service.get('status');
    expect(idle).toMatchObject({ Name: 'status', Mountpoint: '' });
    expect(idle.Status).toMatchObject({
      size: 64 * MiB,
      fs: 'ext4',
      sparse: true,
      mounted: false,
      holders: 0,
      loopDevice: null,
      used: null,
      free: null,
      uid: 7,
      gid: 8,
      mode: '0750',
    });
    expect(idle.Status.allocated).toEqual(expect.any(Number));
    // The host filesystem is shared with whatever else runs: compare within a margin.
    const hostFree = filesystemUsage(layout.volume('status').dir).freeBytes;
    expect(Math.abs(Number(idle.Status.hostFree) - hostFree)).toBeLessThan(256 * MiB);
    expect(idle.Status).not.toHaveProperty('warning');
    expect(await service.path('status')).toBe('');

    const mountPoint = await service.mount('status', A, silentLog);
    const busy = await service.get('status');
    expect(busy.Mountpoint).toBe(layout.volume('status').mountPoint);
    expect(busy.Status).toMatchObject({ mounted: true, holders: 1 });
    expect(busy.Status.loopDevice).toMatch(/^\/dev\/loop\d+$/);
    expect((await mountAt(mountPoint))?.source).toBe(busy.Status.loopDevice);
    const { used, free } = busy.Status as { used: number; free: number };
    expect(used).toBeGreaterThan(0);
    expect(free).toBeGreaterThan(0);
    expect(used + free).toBeLessThanOrEqual(64 * MiB);
    expect(await service.path('status')).toBe(mountPoint);
    expect(await service.list()).toEqual([{ Name: 'status', Mountpoint: mountPoint }]);
    await service.unmount('status', A, silentLog);
    expect(await service.list()).toEqual([{ Name: 'status', Mountpoint: '' }]);
  });

  it('warns in Status when a sparse volume could outgrow the host filesystem', async () => {
    const { service } = await fresh();
    // Twice what the host has free (at most the 16T limit): creating it is allowed, growing is not.
    const hostFree = filesystemUsage(tmpdir()).freeBytes;
    const size = Math.min(16 * 1024 * GiB, Math.ceil((2 * hostFree) / GiB) * GiB);
    await service.create('overcommitted', { size: `${size / GiB}G` }, silentLog);
    const { Status } = await service.get('overcommitted');
    expect(Status.warning).toMatch(
      /^host filesystem has .* free but the sparse volumes on it may still grow by .*: free space/,
    );
    await service.remove('overcommitted', silentLog);
  });

  it('reports CreatedAt in RFC 3339, unchanged by mounts and by a restart', async () => {
    const { service, root } = await fresh();
    const before = Date.now();
    await service.create('dated', {}, silentLog);
    const createdAt = (await service.get('dated')).CreatedAt;
    expect(createdAt).toMatch(RFC3339);
    expect(Date.parse(createdAt)).toBeGreaterThanOrEqual(before - 1000);
    await service.mount('dated', A, silentLog);
    await service.unmount('dated', A, silentLog);
    expect((await service.get('dated')).CreatedAt).toBe(createdAt);
    expect((await openService(root).get('dated')).CreatedAt).toBe(createdAt);
  });

  it('makes one volume out of 20 concurrent Creates of the same name', async () => {
    const { service, layout } = await fresh();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        service.create('race', { size: i % 2 ? '64M' : '128M' }, silentLog),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(await service.list()).toEqual([{ Name: 'race', Mountpoint: '' }]);
    expect(await readdir(layout.volumes)).toEqual(['race']);
    expect(await readdir(layout.staging)).toEqual([]);
    // The first Create won: the image size is the one it asked for.
    expect((await stat(layout.volume('race').image)).size).toBe(128 * MiB);
  });

  it('gives 8 volumes created and mounted concurrently 8 distinct loop devices', async () => {
    const { service } = await fresh();
    const names = Array.from({ length: 8 }, (_, i) => `par${i}`);
    const mountPoints = await Promise.all(
      names.map(async (name) => {
        await service.create(name, {}, silentLog);
        return service.mount(name, A, silentLog);
      }),
    );
    const devices = await Promise.all(names.map(async (n) => (await service.get(n)).Status.loopDevice));
    expect(new Set(devices).size).toBe(8);
    for (const [i, mountPoint] of mountPoints.entries()) {
      expect((await mountAt(mountPoint))?.source).toBe(devices[i]);
    }
    await Promise.all(names.map((name) => service.unmount(name, A, silentLog)));
  });
});

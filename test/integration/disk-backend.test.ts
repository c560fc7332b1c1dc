import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeSignature } from '../../src/system/blkid.js';
import { run } from '../../src/system/exec.js';
import { mountDevice, unmount } from '../../src/system/mount.js';
import type { VolumeService } from '../../src/volume/service.js';
import { silentLog } from '../helpers/int-log.js';
import { MiB, openService, TEST_DEFAULTS } from '../helpers/int-service.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { StableNames, standInDisk } from '../helpers/stable-names.js';
import { storageAvailable } from '../helpers/tools.js';

const statusOf = async (service: VolumeService, name: string) => (await service.get(name)).Status;

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'blkid', 'wipefs', 'mkswap']))(
  'disk backend with loop devices as stand-in pool disks',
  () => {
    let dir: string;
    let blank: string;
    let formatted: string;
    let small: string;
    let swap: string;
    let outside: string;
    let service: VolumeService;
    const names = new StableNames();
    /** A stand-in disk named by its /dev/disk/by-id link, as pool disks are. */
    const poolDisk = async (name: string, size = 80 * MiB) =>
      names.link(name, await standInDisk(dir, name, size));

    beforeAll(async () => {
      dir = await makeTempDir('int-disk');
      blank = await poolDisk('blank');
      formatted = await poolDisk('formatted');
      small = await poolDisk('small', 40 * MiB);
      swap = await poolDisk('swap');
      outside = await standInDisk(dir, 'outside', 80 * MiB);
      // An operator's disk that already holds data: it must be used as it is, never reformatted.
      await run('mkfs.ext4', ['-q', '-F', formatted]);
      const mnt = join(dir, 'seed');
      await run('mkdir', [mnt]);
      await mountDevice(formatted, mnt, 'ext4', []);
      await writeFile(join(mnt, 'kept.txt'), 'operator data');
      await unmount(mnt);
      await run('mkswap', [swap]);
      service = openService(join(dir, 'root'), silentLog, TEST_DEFAULTS, [blank, formatted, small, swap]);
    });
    afterAll(async () => {
      await names.removeAll();
      if (dir) await cleanupTempDir(dir);
    });

    it('formats a blank pool disk and serves it as a volume', async () => {
      await service.create('whole', { backend: 'disk', size: '60M' }, silentLog);
      expect(await statusOf(service, 'whole')).toMatchObject({
        backend: 'disk',
        disk: blank,
        fs: 'ext4',
        size: 80 * MiB,
      });
      const mountPoint = await service.mount('whole', 'c1', silentLog);
      await writeFile(join(mountPoint, 'f'), 'data');
      expect(await statusOf(service, 'whole')).toMatchObject({ mounted: true, holders: 1 });
      await service.unmount('whole', 'c1', silentLog);
      expect((await kernelStateUnder(join(dir, 'root'))).mounts).toEqual([]);
    });

    it('keeps the filesystem and data of a pool disk that already has one', async () => {
      await service.create('kept', { backend: 'disk', size: '60M' }, silentLog);
      expect(await statusOf(service, 'kept')).toMatchObject({ disk: formatted });
      const mountPoint = await service.mount('kept', undefined, silentLog);
      expect(await readFile(join(mountPoint, 'kept.txt'), 'utf8')).toBe('operator data');
      await service.unmount('kept', undefined, silentLog);
    });

    it('skips disks too small for the size asked, and refuses a disk with a foreign signature', async () => {
      // blank and formatted are claimed; small is under 60M; swap is big enough but holds swap.
      await expect(service.create('none', { backend: 'disk', size: '60M' }, silentLog)).rejects.toThrow(
        `pool disk ${swap} holds swap, which loopvol does not mount: wipe it (wipefs -a ${swap})`,
      );
      // Without a size any disk fits: small is the first free one.
      await service.create('smallest', { backend: 'disk' }, silentLog);
      expect(await statusOf(service, 'smallest')).toMatchObject({ disk: small, size: 40 * MiB });
      await expect(service.create('foreign', { backend: 'disk' }, silentLog)).rejects.toThrow(/holds swap/);
      expect((await service.list()).map((v) => v.Name).sort()).toEqual(['kept', 'smallest', 'whole']);
    });

    it('never touches a device outside the pool', async () => {
      expect(await probeSignature(outside)).toBeUndefined();
    });

    it('refuses Remove while mounted, then wipes the disk and returns it to the pool', async () => {
      await service.mount('whole', 'c2', silentLog);
      await expect(service.remove('whole', silentLog)).rejects.toThrow(/in use by mount ID c2/);
      await service.unmount('whole', 'c2', silentLog);
      await service.remove('whole', silentLog);
      expect(await probeSignature(blank)).toBeUndefined();
      // The next disk volume gets the freed disk, freshly formatted: none of the old files.
      await service.create('reused', { backend: 'disk', size: '60M' }, silentLog);
      expect(await statusOf(service, 'reused')).toMatchObject({ disk: blank });
      const mountPoint = await service.mount('reused', undefined, silentLog);
      expect(await readFile(join(mountPoint, 'f'), 'utf8').catch((e) => e.code)).toBe('ENOENT');
      await service.unmount('reused', undefined, silentLog);
    });

    it('keeps disk ownership across a restart', async () => {
      const restarted = openService(join(dir, 'root'), silentLog, TEST_DEFAULTS, [
        blank,
        formatted,
        small,
        swap,
      ]);
      expect(await statusOf(restarted, 'kept')).toMatchObject({ disk: formatted, mounted: false });
      // Every other disk is claimed by a record read back from disk; the swap disk is too small for 1G.
      await expect(restarted.create('more', { backend: 'disk', size: '1G' }, silentLog)).rejects.toThrow(
        `no free pool disk of at least 1G (${swap} has only 80M): add disks to --disk-pool`,
      );
    });

    it('refuses disk volumes when no pool is configured', async () => {
      const poolless = openService(join(dir, 'root2'));
      await expect(poolless.create('d', { backend: 'disk' }, silentLog)).rejects.toThrow(
        /no disk pool is configured: start loopvol with --disk-pool/,
      );
    });
  },
);

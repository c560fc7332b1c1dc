import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fsckVolume } from '../../src/maintenance/fsck.js';
import { Layout } from '../../src/state/layout.js';
import { probeSignature } from '../../src/system/blkid.js';
import { run } from '../../src/system/exec.js';
import { detachLoop } from '../../src/system/losetup.js';
import type { VolumeService } from '../../src/volume/service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { runLoopvol } from '../helpers/int-process.js';
import { MiB, openService, TEST_DEFAULTS } from '../helpers/int-service.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { StableNames, standInDisk } from '../helpers/stable-names.js';
import { storageAvailable } from '../helpers/tools.js';

const SIZE = 64 * MiB;
const fsUuid = (device: string) => run('blkid', ['-p', '-o', 'value', '-s', 'UUID', '--', device]);

/** Mounts a volume, writes `text` into it, unmounts it. */
async function put(service: VolumeService, name: string, text: string): Promise<void> {
  await writeFile(join(await service.mount(name, undefined, silentLog), 'owner'), text);
  await service.unmount(name, undefined, silentLog);
}

/** Mounts a volume, reads what put() wrote, unmounts it. */
async function take(service: VolumeService, name: string): Promise<string> {
  const text = await readFile(join(await service.mount(name, undefined, silentLog), 'owner'), 'utf8');
  await service.unmount(name, undefined, silentLog);
  return text;
}

/** Attaches `image` to exactly `device` (free again after its detach), as a reboot could. */
async function attachAt(device: string, image: string): Promise<void> {
  await run('losetup', ['--direct-io=on', '--', device, image]);
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'blkid', 'wipefs']))(
  'disk pool by stable identity (loop devices as disks, by-id links made by the test)',
  () => {
    let parent: string;
    let dir: string;
    let root: string;
    let names: StableNames;
    beforeAll(async () => {
      parent = await makeTempDir('int-disk-id');
    });
    afterEach(async () => {
      await names.removeAll();
      await cleanupTempDir(dir);
    });
    afterAll(async () => {
      if (parent) await cleanupTempDir(parent);
    });

    /** A fresh case: two stand-in disks a and b, each with a by-id link. */
    async function twoDisks() {
      dir = await mkdtemp(join(parent, 'case-'));
      root = join(dir, 'root');
      names = new StableNames();
      const devA = await standInDisk(dir, 'a', SIZE);
      const devB = await standInDisk(dir, 'b', SIZE);
      return { devA, devB, linkA: await names.link('a', devA), linkB: await names.link('b', devB) };
    }

    /** Volumes x (on the first pool disk) and y (on the second), each holding its own name. */
    async function twoVolumes(pool: string[]): Promise<VolumeService> {
      const service = openService(root, silentLog, TEST_DEFAULTS, pool);
      for (const name of ['x', 'y']) {
        await service.create(name, { backend: 'disk' }, silentLog);
        await put(service, name, `${name} data`);
      }
      return service;
    }

    it('takes a kernel name in the pool by its by-id name with a warning, and refuses one without', async () => {
      const { devA, linkA } = await twoDisks();
      const captured = captureLog('warn');
      const service = openService(root, captured.log, TEST_DEFAULTS, [devA]);
      await service.create('x', { backend: 'disk' }, silentLog);
      expect((await service.get('x')).Status).toMatchObject({ disk: linkA });
      expect(captured.lines()).toContainEqual(
        expect.objectContaining({
          entry: devA,
          disk: linkA,
          msg: `--disk-pool ${devA} is a kernel name, which can lead to another disk after a reboot: using ${linkA} instead; name it so in --disk-pool`,
        }),
      );

      const bare = await standInDisk(dir, 'bare', SIZE);
      const refused = openService(join(dir, 'root2'), silentLog, TEST_DEFAULTS, [bare]);
      await expect(refused.create('y', { backend: 'disk' }, silentLog)).rejects.toThrow(
        `--disk-pool ${bare} has no stable name under /dev/disk/by-id: a kernel name such as /dev/sdb can lead to another disk after a reboot`,
      );
      // The daemon refuses such a pool before it listens.
      const daemon = await runLoopvol([
        'serve',
        ...['--socket', join(dir, 'p.sock'), '--data-root', join(dir, 'root3')],
        ...['--disk-pool', bare],
      ]);
      expect(daemon.code).toBe(1);
      expect(daemon.output).toContain(`--disk-pool ${bare} has no stable name under /dev/disk/by-id`);
      expect(await probeSignature(bare)).toBeUndefined();
    });

    it('serves each volume its own disk after a reboot swapped the kernel names', async () => {
      const { devA, devB } = await twoDisks();
      // The operator named the pool by kernel names: resolved to the by-id names at start.
      await twoVolumes([devA, devB]);

      // The reboot: the disks come up in the other order; udev's links follow the disks.
      await detachLoop(devA);
      await attachAt(devA, join(dir, 'b.img'));
      await detachLoop(devB);
      await attachAt(devB, join(dir, 'a.img'));
      await names.link('a', devB);
      await names.link('b', devA);

      const after = openService(root, silentLog, TEST_DEFAULTS, [devA, devB]);
      expect(await take(after, 'x')).toBe('x data');
      expect(await take(after, 'y')).toBe('y data');
    });

    it('refuses Mount and Remove of a volume whose by-id link leads to another volume’s disk', async () => {
      const { devA, devB, linkA, linkB } = await twoDisks();
      const service = await twoVolumes([linkA, linkB]);
      const [uuidX, uuidY] = [await fsUuid(devA), await fsUuid(devB)];

      // The links made wrongly (a udev rule changed, disks moved between hosts).
      await names.link('a', devB);
      await names.link('b', devA);
      const mismatch = `volume x's disk ${linkA} (now ${devB}) holds ext4 filesystem ${uuidY} (volume y's), not its own ${uuidX}; volume x's filesystem is on ${linkB} (now ${devA})`;
      await expect(service.mount('x', undefined, silentLog)).rejects.toThrow(`${mismatch}: not mounting it`);
      await expect(service.remove('x', silentLog)).rejects.toThrow(`${mismatch}: not wiping it`);
      await expect(fsckVolume(service, 'x', true, silentLog)).rejects.toThrow(`${mismatch}: not checking it`);
      expect(await fsUuid(devB)).toBe(uuidY);

      // Links right again: both volumes as they were.
      await names.link('a', devA);
      await names.link('b', devB);
      expect(await take(service, 'x')).toBe('x data');
      expect(await take(service, 'y')).toBe('y data');
      // A Remove that wiped its disk and was interrupted before the record went finds the disk blank.
      await run('wipefs', ['--all', '--quiet', '--', devA]);
      await expect(service.mount('x', undefined, silentLog)).rejects.toThrow(
        `volume x's disk ${linkA} (now ${devA}) holds no ext4 or xfs filesystem, not its own ${uuidX}: not mounting it`,
      );
      await service.remove('x', silentLog);
      expect((await service.list()).map((v) => v.Name)).toEqual(['y']);
    });

    it('keeps the disk of a volume whose record cannot be read from the next Create', async () => {
      const { linkA, linkB } = await twoDisks();
      const service = openService(root, silentLog, TEST_DEFAULTS, [linkA, linkB]);
      await service.create('x', { backend: 'disk' }, silentLog);
      await put(service, 'x', 'x data');
      await writeFile(new Layout(root).volume('x').meta, '{"version": 1, "na');

      const restarted = openService(root, silentLog, TEST_DEFAULTS, [linkA, linkB]);
      await restarted.create('z', { backend: 'disk' }, silentLog);
      expect((await restarted.get('z')).Status).toMatchObject({ disk: linkB });
      await expect(restarted.create('w', { backend: 'disk' }, silentLog)).rejects.toThrow(
        /no free pool disk: add disks to --disk-pool/,
      );
      expect(restarted.unreadable.has('x')).toBe(true);
    });

    it('upgrades a record that names its disk by kernel name, and refuses one whose disk holds another volume', async () => {
      const { devA, devB, linkA, linkB } = await twoDisks();
      await twoVolumes([linkA, linkB]);
      const [uuidX, uuidY] = [await fsUuid(devA), await fsUuid(devB)];
      // As an older loopvol wrote them: the kernel name only, no UUID, no claim file. x's is right;
      // old's names y's disk (the kernel names changed at a reboot before the upgrade).
      const layout = new Layout(root);
      const legacy = async (name: string, disk: string) => {
        const paths = layout.volume(name);
        const { fsUuid: _, ...record } = JSON.parse(await readFile(paths.meta, 'utf8'));
        await writeFile(paths.meta, JSON.stringify({ ...record, name, disk }));
        await rm(join(paths.dir, 'disk-claim.json'), { force: true });
      };
      await legacy('x', devA);
      await run('cp', ['-a', layout.volume('x').dir, layout.volume('old').dir]);
      await legacy('old', devB);

      const captured = captureLog('info');
      const restarted = openService(root, captured.log, TEST_DEFAULTS, [linkA, linkB]);
      expect((await restarted.get('x')).Status).toMatchObject({ disk: linkA });
      expect(captured.lines()).toContainEqual(
        expect.objectContaining({
          volume: 'x',
          from: devA,
          disk: linkA,
          fsUuid: uuidX,
          msg: 'disk volume record upgraded: its disk is now named by stable id and checked by filesystem UUID',
        }),
      );
      expect(JSON.parse(await readFile(layout.volume('x').meta, 'utf8'))).toMatchObject({
        disk: linkA,
        fsUuid: uuidX,
      });
      expect(JSON.parse(await readFile(layout.volume('x').claim, 'utf8'))).toEqual({
        disk: linkA,
        fsUuid: uuidX,
      });
      expect(await take(restarted, 'x')).toBe('x data');

      expect(captured.lines()).toContainEqual(
        expect.objectContaining({ volume: 'old', msg: 'disk volume record not upgraded' }),
      );
      await expect(restarted.mount('old', undefined, silentLog)).rejects.toThrow(
        `volume old's disk ${devB} (now ${devB}) holds ext4 filesystem ${uuidY} (volume y's): not mounting it`,
      );
      await expect(restarted.remove('old', silentLog)).rejects.toThrow(/not wiping it/);
      expect(await take(restarted, 'y')).toBe('y data');
    });
  },
);

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { fsckVolume } from '../../src/maintenance/fsck.js';
import { Collector } from '../../src/maintenance/gc.js';
import { Store } from '../../src/state/store.js';
import { loopsFor } from '../../src/system/loop-sysfs.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { silentLog } from '../helpers/int-log.js';
import { openService, serviceCases, testKernelOps } from '../helpers/int-service.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const A = 'a'.repeat(64);

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'e2fsck', 'xfs_repair']))(
  'fsck and gc against the real kernel',
  () => {
    const fresh = serviceCases('int-maintenance');

    it('fsck refuses a volume in use, and checks it once it is not (ext4 and xfs)', async () => {
      const { service } = await fresh();
      await service.create('ext', { size: '64M' }, silentLog);
      await service.create('xfsvol', { size: '300M', fs: 'xfs' }, silentLog);
      await service.mount('ext', A, silentLog);
      await expect(fsckVolume(service, 'ext', false, silentLog)).rejects.toMatchObject({
        kind: 'conflict',
        message: expect.stringMatching(/volume ext is in use by .*: a check needs it unmounted/),
      });
      await service.unmount('ext', A, silentLog);
      expect(await fsckVolume(service, 'ext', false, silentLog)).toMatchObject({
        clean: true,
        repaired: false,
        exitCode: 0,
        command: expect.stringMatching(/^e2fsck -f -n -- .*disk\.img$/),
      });
      expect(await fsckVolume(service, 'xfsvol', true, silentLog)).toMatchObject({
        clean: true,
        repaired: false,
        command: expect.stringMatching(/^xfs_repair -n -f /),
      });
      await expect(fsckVolume(service, 'nothere', false, silentLog)).rejects.toMatchObject({
        kind: 'not-found',
      });
      await service.remove('ext', silentLog);
      await service.remove('xfsvol', silentLog);
    });

    it('fsck first releases a device an interrupted Unmount left attached', async () => {
      const { service, layout } = await fresh();
      await service.create('left', { size: '64M' }, silentLog);
      await execa('losetup', ['--find', layout.volume('left').image]);
      expect(await loopsFor(layout.volume('left').image)).toHaveLength(1);
      expect(await fsckVolume(service, 'left', false, silentLog)).toMatchObject({ clean: true });
      expect(await loopsFor(layout.volume('left').image)).toEqual([]);
      await service.remove('left', silentLog);
    });

    it('gc releases a served volume attached with no holder, leaves held ones, and keeps what is not its own', async () => {
      const { service, layout, root, dir } = await fresh();
      const collector = new Collector(new Store(layout), service, testKernelOps);
      await service.create('idle', { size: '64M' }, silentLog);
      await service.create('held', { size: '64M' }, silentLog);
      await service.mount('held', A, silentLog);
      // A removed volume's image, attached and mounted outside loopvol's directories.
      const trashed = join(layout.trash, 'old', 'disk.img');
      await mkdir(join(layout.trash, 'old'), { recursive: true });
      await execa('truncate', ['-s', '64M', trashed]);
      await execa('mkfs.ext4', ['-q', trashed]);
      const device = (await execa('losetup', ['--find', '--show', trashed])).stdout;
      const elsewhere = join(dir, 'elsewhere');
      await mkdir(elsewhere);
      await execa('mount', [device, elsewhere]);
      // A volume directory whose metadata a restart could not read.
      await mkdir(join(layout.volumes, 'broken'));
      await writeFile(join(layout.volumes, 'broken', 'volume.json'), '{"torn');
      const restarted = openService(root);
      await restarted.list();
      // After start-up (which would release it itself), as an Unmount killed mid-way leaves it.
      await execa('losetup', ['--find', layout.volume('idle').image]);
      const gc = new Collector(new Store(layout), restarted, testKernelOps);
      try {
        const planned = await gc.collect(true, silentLog);
        expect(planned).toEqual(
          expect.arrayContaining([
            expect.objectContaining({
              kind: 'volume',
              target: 'idle',
              action: 'would clean',
              reason: expect.stringMatching(/no holder/),
            }),
            expect.objectContaining({
              kind: 'loop device',
              target: device,
              action: 'kept',
              reason: expect.stringContaining(`mounted at ${elsewhere}, outside loopvol's directories`),
            }),
            expect.objectContaining({
              kind: 'trash',
              target: join(layout.trash, 'old'),
              action: 'kept',
              reason: expect.stringMatching(/^a loop device still serves an image in it/),
            }),
            {
              kind: 'volume directory',
              target: join(layout.volumes, 'broken'),
              action: 'kept',
              reason: expect.stringMatching(
                /could not be read .*repair volume\.json or move the directory away/,
              ),
            },
          ]),
        );
        expect(planned.some((f) => f.target === 'held')).toBe(false);
        expect(await loopsFor(layout.volume('idle').image)).toHaveLength(1);

        const done = await gc.collect(false, silentLog);
        expect(done).toContainEqual(
          expect.objectContaining({ kind: 'volume', target: 'idle', action: 'cleaned' }),
        );
        expect(await loopsFor(layout.volume('idle').image)).toEqual([]);
        expect(await mountAt(layout.volume('held').mountPoint)).toBeDefined();
        expect(await mountAt(elsewhere)).toBeDefined();
      } finally {
        await execa('umount', [elsewhere], { reject: false });
        await execa('losetup', ['-d', device], { reject: false });
      }
      // Unmounted, the trashed image's device is gc's to detach, and the trash with it.
      expect(await gc.collect(false, silentLog)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ kind: 'trash', target: join(layout.trash, 'old'), action: 'cleaned' }),
        ]),
      );
      await restarted.unmount('held', A, silentLog);
      await restarted.remove('held', silentLog);
      await restarted.remove('idle', silentLog);
      await collector.collect(false, silentLog);
    });
  },
);

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount']))('gc at daemon start-up', () => {
  it('detaches the loop device of an image a killed Remove left in the trash', async () => {
    const dir = await makeTempDir('int-gc-startup');
    const root = join(dir, 'root');
    const orphan = join(root, 'trash', 'killed', 'disk.img');
    await mkdir(join(root, 'trash', 'killed'), { recursive: true, mode: 0o700 });
    await execa('truncate', ['-s', '16M', orphan]);
    const device = (await execa('losetup', ['--find', '--show', orphan])).stdout;
    const plugin = await startPlugin(dir, { dataRoot: root });
    try {
      await plugin.waitForLog(new RegExp(`"target":"${device}".*"msg":"gc cleaned this"`));
      expect((await execa('losetup', ['-j', orphan], { reject: false })).stdout).toBe('');
    } finally {
      await plugin.stop();
      await execa('losetup', ['-d', device], { reject: false });
      await cleanupTempDir(dir);
    }
  });
});

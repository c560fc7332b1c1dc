import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loopsFor } from '../../src/system/loop-sysfs.js';
import { detachLoop } from '../../src/system/losetup.js';
import { unmount } from '../../src/system/mount.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

describe.runIf(storageAvailable())(
  'a hostile environment: detected, refused or repaired, never followed',
  () => {
    let dir: string;
    let plugin: PluginProcess | undefined;
    const paths = (name: string) => {
      const volume = join(dir, 'root', 'volumes', name);
      return { volume, image: join(volume, 'disk.img'), mnt: join(volume, 'mnt') };
    };
    const call = (method: string, body: object) => (plugin as PluginProcess).call(method, body);
    const create = async (name: string) => {
      expect((await call('VolumeDriver.Create', { Name: name, Opts: { size: '32M' } })).status).toBe(200);
    };

    beforeEach(async () => {
      dir = await makeTempDir('hostile');
    });
    afterEach(async () => {
      await plugin?.stop();
      plugin = undefined;
      await cleanupTempDir(dir);
    });

    it('refuses a symlink planted at a mountpoint, mounting nothing at its target', async () => {
      plugin = await startPlugin(dir);
      await create('planted');
      const target = join(dir, 'elsewhere');
      await mkdir(target);
      const { mnt } = paths('planted');
      await rm(mnt, { recursive: true, force: true });
      await symlink(target, mnt);
      const reply = await call('VolumeDriver.Mount', { Name: 'planted', ID: 'a' });
      expect(reply.status).toBe(500);
      expect(reply.body.Err).toBe(
        `cannot mount volume planted: ${mnt} is not a plain directory (symlink or replaced?): refusing to use it`,
      );
      expect(await mountAt(target)).toBeUndefined();
      expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
      await plugin.waitForLog(/"volume":"planted".*not a plain directory/);
    });

    it('refuses a symlink planted at an image', async () => {
      plugin = await startPlugin(dir);
      await create('imgsym');
      const { image } = paths('imgsym');
      const elsewhere = join(dir, 'other.img');
      await rename(image, elsewhere);
      await symlink(elsewhere, image);
      const reply = await call('VolumeDriver.Mount', { Name: 'imgsym', ID: 'a' });
      expect(reply.body.Err).toContain(
        `${image} is not a plain file (symlink or replaced?): refusing to use it`,
      );
      expect(await loopsFor(elsewhere)).toEqual([]);
    });

    it('tightens a data root with loose permissions at start, with a log line', async () => {
      const root = join(dir, 'root');
      await mkdir(join(root, 'volumes'), { recursive: true });
      await chmod(root, 0o777);
      await chmod(join(root, 'volumes'), 0o777);
      plugin = await startPlugin(dir);
      // The socket listens before start-up work (dockerd's timeout); the log line marks it done.
      await plugin.waitForLog(/"repaired":".*root was mode 0777".*tightened to 0700/);
      expect((await stat(root)).mode & 0o777).toBe(0o700);
      expect((await stat(join(root, 'volumes'))).mode & 0o777).toBe(0o700);
    });

    it('refuses to start on a data root that is a symlink', async () => {
      await mkdir(join(dir, 'real'));
      await symlink(join(dir, 'real'), join(dir, 'root'));
      // Checked before the socket listens: dockerd never sees a plugin that cannot work.
      await expect(startPlugin(dir)).rejects.toThrow(
        /loopvol exited with 1:[\s\S]*cannot use data root .*\/root: .*\/root is not a plain directory \(symlink\?\): refusing to use it/,
      );
      expect(existsSync(join(dir, 'plugin.sock'))).toBe(false);
    });

    it('re-attaches a volume unmounted and detached behind its back', async () => {
      plugin = await startPlugin(dir);
      await create('behind');
      const { mnt, image } = paths('behind');
      await call('VolumeDriver.Mount', { Name: 'behind', ID: 'first' });
      await unmount(mnt);
      for (const device of await loopsFor(image)) await detachLoop(device);
      // The next Mount notices from the kernel that nothing is attached and attaches again.
      const reply = await call('VolumeDriver.Mount', { Name: 'behind', ID: 'second' });
      expect(reply.status).toBe(200);
      expect(await mountAt(mnt)).toBeDefined();
      await writeFile(join(mnt, 'ok'), 'ok');
      expect((await call('VolumeDriver.Unmount', { Name: 'behind', ID: 'first' })).status).toBe(200);
      expect(await mountAt(mnt)).toBeDefined();
      expect((await call('VolumeDriver.Unmount', { Name: 'behind', ID: 'second' })).status).toBe(200);
      expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
    });

    it('reports an image deleted while unmounted, naming the file, and keeps serving', async () => {
      plugin = await startPlugin(dir);
      await create('gone');
      await create('fine');
      const { image } = paths('gone');
      await rm(image);
      const reply = await call('VolumeDriver.Mount', { Name: 'gone', ID: 'a' });
      expect(reply.body.Err).toBe(
        `cannot mount volume gone: ${image} is missing (ENOENT): restore it from backup or remove the volume`,
      );
      expect((await call('VolumeDriver.List', {})).status).toBe(200);
      expect((await call('VolumeDriver.Mount', { Name: 'fine', ID: 'a' })).status).toBe(200);
      expect((await call('VolumeDriver.Unmount', { Name: 'fine', ID: 'a' })).status).toBe(200);
      expect((await call('VolumeDriver.Remove', { Name: 'gone' })).status).toBe(200);
      expect(await readdir(join(dir, 'root', 'volumes'))).toEqual(['fine']);
    });

    it('still answers Get and releases everything when the image is deleted while mounted', async () => {
      plugin = await startPlugin(dir);
      await create('vanish');
      const { image, mnt } = paths('vanish');
      await call('VolumeDriver.Mount', { Name: 'vanish', ID: 'a' });
      await rm(image);
      const get = await call('VolumeDriver.Get', { Name: 'vanish' });
      expect(get.status).toBe(200);
      expect(get.body.Volume).toMatchObject({ Status: { mounted: true, holders: 1, allocated: null } });
      expect((await call('VolumeDriver.Unmount', { Name: 'vanish', ID: 'a' })).status).toBe(200);
      expect(await mountAt(mnt)).toBeUndefined();
      expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
    });
  },
);

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSparse } from '../../src/system/allocate.js';
import { NotTheVolume } from '../../src/system/freeze.js';
import { loadLibc } from '../../src/system/libc.js';
import { attachLoop } from '../../src/system/losetup.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountDevice, unmount } from '../../src/system/mount.js';
import { shutdownFilesystem } from '../../src/system/shutdown.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

const ffi = !((await loadLibc()) instanceof Error);

describe.runIf(ffi && storageAvailable(['losetup', 'mkfs.ext4', 'mount']))(
  'shutting a filesystem down',
  () => {
    let dir: string;
    let mountPoint: string;

    async function ext4(label: string): Promise<string> {
      const image = join(dir, `${label}.img`);
      await createSparse(image, 64 * 1024 * 1024);
      await makeFilesystem(image, 'ext4', 'sparse-image');
      return attachLoop(image, { directIo: false });
    }

    beforeAll(async () => {
      dir = await makeTempDir('shutdown');
      mountPoint = join(dir, 'mnt');
      await mkdir(mountPoint);
    });
    afterAll(async () => {
      if (dir) await cleanupTempDir(dir);
    });

    it('refuses when the volume was unmounted from outside and another filesystem is mounted there', async () => {
      const volume = await ext4('volume');
      const other = await ext4('other');
      await mountDevice(volume, mountPoint, 'ext4', []);
      await unmount(mountPoint);
      await mountDevice(other, mountPoint, 'ext4', []);
      try {
        await expect(shutdownFilesystem(mountPoint, volume)).rejects.toThrow(NotTheVolume);
        await writeFile(join(mountPoint, 'still'), 'writable');
        expect(await readFile(join(mountPoint, 'still'), 'utf8')).toBe('writable');
        // On its own device, it does shut down: writes fail from then on.
        await shutdownFilesystem(mountPoint, other);
        await expect(writeFile(join(mountPoint, 'after'), 'x')).rejects.toMatchObject({ code: 'EIO' });
      } finally {
        await unmount(mountPoint);
      }
    });
  },
);

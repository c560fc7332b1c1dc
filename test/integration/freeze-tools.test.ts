import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createSparse } from '../../src/system/allocate.js';
import { freezeFilesystem, NotTheVolume } from '../../src/system/freeze.js';
import { attachLoop } from '../../src/system/losetup.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountDevice } from '../../src/system/mount.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

// As where koffi does not load: fsfreeze(8) freezes instead of the ioctl.
vi.mock('koffi', () => {
  throw new Error('Cannot find the native Koffi module');
});

/** Whether the filesystem at `path` is frozen: a second freeze answers EBUSY (and one that works is undone). */
async function frozen(path: string): Promise<boolean> {
  const second = await execa('fsfreeze', ['-f', path], { reject: false });
  if (second.exitCode === 0) await execa('fsfreeze', ['-u', path]);
  return second.exitCode !== 0 && second.stderr.includes('busy');
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'fsfreeze']))(
  'freezing without the FFI',
  () => {
    let dir: string;
    let mountPoint: string;
    let device: string;
    beforeAll(async () => {
      dir = await makeTempDir('freeze-tools');
      const image = join(dir, 'disk.img');
      await createSparse(image, 64 * 1024 * 1024);
      await makeFilesystem(image, 'ext4', 'sparse-image');
      mountPoint = join(dir, 'mnt');
      await mkdir(mountPoint);
      device = await attachLoop(image, { directIo: false });
      await mountDevice(device, mountPoint, 'ext4', []);
    });
    afterAll(async () => {
      await cleanupTempDir(dir);
    });

    it('freezes the open directory with fsfreeze and thaws it through the same descriptor', async () => {
      const thaw = await freezeFilesystem(mountPoint, device);
      try {
        expect(await frozen(mountPoint)).toBe(true);
      } finally {
        await thaw();
      }
      expect(await frozen(mountPoint)).toBe(false);
    });

    it('refuses a directory on another device than the one named, freezing nothing', async () => {
      // (Not the host's filesystem exposed by an unmount: a regression would freeze the test machine.)
      await expect(freezeFilesystem(mountPoint, '/dev/null')).rejects.toThrow(NotTheVolume);
      expect(await frozen(mountPoint)).toBe(false);
    });
  },
);

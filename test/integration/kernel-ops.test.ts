import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSparse } from '../../src/system/allocate.js';
import { type KernelOps, selectKernelOps, toolOps } from '../../src/system/kernel-ops.js';
import { readLoop } from '../../src/system/loop-sysfs.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { isMountPoint } from '../../src/system/mountpoint.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

const syscalls = await selectKernelOps('syscalls');

/**
 * Both ways of driving the kernel on the Mount path, against the real kernel: the system calls
 * (LOOP_CONFIGURE, LOOP_CLR_FD, mount(2), umount2(2) through the FFI) and the tools they replace.
 */
describe.runIf(storageAvailable())('kernel operations on the real kernel', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir('kernel-ops');
  });
  afterAll(async () => {
    await cleanupTempDir(dir);
  });

  it('loads the FFI on this machine (no fallback to the tools)', async () => {
    expect(syscalls.fallback).toBeUndefined();
    expect(syscalls.ops.via).toBe('syscalls');
    expect(await selectKernelOps('tools')).toMatchObject({
      ops: { via: 'tools' },
      fallback: 'LOOPVOL_SYSCALLS=tools',
    });
  });

  describe.each([
    ['syscalls', () => syscalls.ops],
    ['tools', () => toolOps],
  ] as [string, () => KernelOps][])('%s', (via, ops) => {
    async function formatted(name: string): Promise<{ image: string; mountPoint: string }> {
      const image = join(dir, `${via}-${name}.img`);
      const mountPoint = join(dir, `${via}-${name}-mnt`);
      await createSparse(image, 64 * 1024 * 1024);
      await makeFilesystem(image, 'ext4', 'sparse-image');
      await mkdir(mountPoint);
      return { image, mountPoint };
    }

    it('attaches with direct I/O and the block size asked, mounts with flags and data options, unmounts, detaches', async () => {
      const { image, mountPoint } = await formatted('cycle');
      const device = await ops().attachLoop(image, { directIo: true, blockSize: 512 });
      const name = device.slice('/dev/'.length);
      expect(readLoop(device)).toEqual({ device, backingFile: image, autoclear: false });
      const { readFile } = await import('node:fs/promises');
      expect((await readFile(`/sys/block/${name}/loop/dio`, 'utf8')).trim()).toBe('1');
      expect((await readFile(`/sys/block/${name}/queue/logical_block_size`, 'utf8')).trim()).toBe('512');

      await ops().mount(device, mountPoint, 'ext4', ['nosuid', 'nodev', 'noatime', 'noinit_itable']);
      const entry = await mountAt(mountPoint);
      expect(entry).toMatchObject({ fsType: 'ext4', source: device });
      expect(entry?.superOptions).toContain('noinit_itable');
      const perMount = (await readFile('/proc/self/mountinfo', 'utf8'))
        .split('\n')
        .find((l) => l.split(' ')[4] === mountPoint);
      expect(perMount?.split(' ')[5]?.split(',')).toEqual(
        expect.arrayContaining(['nosuid', 'nodev', 'noatime']),
      );
      expect(isMountPoint(mountPoint)).toBe(true);
      await writeFile(join(mountPoint, 'f'), 'x');

      await ops().unmount(mountPoint);
      expect(isMountPoint(mountPoint)).toBe(false);
      await ops().detachLoop(device);
      await expect.poll(() => readLoop(device), { timeout: 5_000 }).toBeUndefined();
      expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
    });

    it('attaches read-only: the device refuses writes, and a read-only mount needs no journal replay', async () => {
      const { image, mountPoint } = await formatted('readonly');
      const device = await ops().attachLoop(image, { directIo: false, readOnly: true });
      const name = device.slice('/dev/'.length);
      const { open, readFile } = await import('node:fs/promises');
      expect((await readFile(`/sys/block/${name}/ro`, 'utf8')).trim()).toBe('1');
      const handle = await open(device, 'r+').catch(() => undefined);
      try {
        if (handle)
          await expect(handle.write(Buffer.alloc(4096), 0, 4096, 0)).rejects.toThrow(/EPERM|EROFS|EIO/);
      } finally {
        await handle?.close();
      }
      await ops().mount(device, mountPoint, 'ext4', ['ro', 'noload']);
      await expect(writeFile(join(mountPoint, 'f'), 'x')).rejects.toThrow(/EROFS/);
      await ops().unmount(mountPoint);
      await ops().detachLoop(device);
      await expect.poll(() => readLoop(device), { timeout: 5_000 }).toBeUndefined();
    });

    it('refuses to unmount a busy filesystem with a message naming it, and detaching a gone device is no error', async () => {
      const { image, mountPoint } = await formatted('busy');
      const device = await ops().attachLoop(image, { directIo: false });
      await ops().mount(device, mountPoint, 'ext4', []);
      const { open } = await import('node:fs/promises');
      const held = await open(join(mountPoint, 'held'), 'w');
      try {
        await expect(ops().unmount(mountPoint)).rejects.toThrow(mountPoint);
        expect(isMountPoint(mountPoint)).toBe(true);
      } finally {
        await held.close();
      }
      await ops().unmount(mountPoint);
      await ops().detachLoop(device);
      await expect.poll(() => readLoop(device), { timeout: 5_000 }).toBeUndefined();
      await expect(ops().detachLoop(device)).resolves.toBeUndefined();
    });

    it('reports a mount that fails (wrong filesystem type) as an error naming device and mountpoint', async () => {
      const { image, mountPoint } = await formatted('wrongfs');
      const device = await ops().attachLoop(image, { directIo: true });
      try {
        await expect(ops().mount(device, mountPoint, 'xfs', [])).rejects.toThrow(device);
        expect(isMountPoint(mountPoint)).toBe(false);
      } finally {
        await ops().detachLoop(device);
      }
    });
  });
});

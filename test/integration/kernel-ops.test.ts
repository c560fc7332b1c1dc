import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSparse } from '../../src/system/allocate.js';
import {
  chooseLoopAttach,
  type KernelOps,
  type LoopAttachPath,
  selectKernelOps,
  toolOps,
} from '../../src/system/kernel-ops.js';
import { type Libc, loadLibc, SyscallError } from '../../src/system/libc.js';
import { hasLoopConfigure } from '../../src/system/loop-ioctl.js';
import { readLoop } from '../../src/system/loop-sysfs.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { isMountPoint } from '../../src/system/mountpoint.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

const syscalls = await selectKernelOps('syscalls', 'auto');
/** The loop attach path each test forces, as LOOPVOL_LOOP_ATTACH does for the daemon. */
const forced = async (path: LoopAttachPath) => (await selectKernelOps('syscalls', path)).ops;

/** This kernel's libc, except that LOOP_CONFIGURE answers `code`, as a kernel before 5.8 does. */
async function libcWithout(code: string): Promise<Libc> {
  const libc = (await loadLibc()) as Libc;
  return {
    call: libc.call,
    callAsync: (name, ...args) =>
      name === 'ioctlPtr' && args[1] === 0x4c0a
        ? Promise.reject(new SyscallError('ioctlPtr', code, 0))
        : libc.callAsync(name, ...args),
  };
}

/** What LOOP_CONFIGURE sets and the other paths must match: direct I/O, block size, read-only. */
async function sysfs(device: string): Promise<{ dio: string; blockSize: string; readOnly: string }> {
  const name = device.slice('/dev/'.length);
  const read = async (file: string) => (await readFile(`/sys/block/${name}/${file}`, 'utf8')).trim();
  return {
    dio: await read('loop/dio'),
    blockSize: await read('queue/logical_block_size'),
    readOnly: await read('ro'),
  };
}

/**
 * Every way of driving the kernel on the Mount path, against the real kernel: the system calls
 * (mount(2), umount2(2), LOOP_CLR_FD, and loop devices attached with LOOP_CONFIGURE or, as on
 * kernels before 5.8, with LOOP_SET_FD and LOOP_SET_STATUS64) and the tools they replace.
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
      ops: { via: 'tools', loopAttach: 'tools' },
      fallback: 'LOOPVOL_SYSCALLS=tools',
    });
  });

  it('asks the kernel once which attach it has: LOOP_CONFIGURE here, LOOP_SET_FD where the kernel does not know it', async () => {
    const libc = (await loadLibc()) as Libc;
    expect(await hasLoopConfigure(libc)).toBe(true);
    expect(syscalls).toMatchObject({
      ops: { loopAttach: 'configure' },
      loopAttachReason: 'the kernel has it',
    });
    for (const code of ['EINVAL', 'ENOTTY']) {
      const old = await libcWithout(code);
      expect(await hasLoopConfigure(old)).toBe(false);
      expect(await chooseLoopAttach(undefined, () => hasLoopConfigure(old))).toEqual({
        path: 'set-fd',
        reason: 'the kernel has no LOOP_CONFIGURE, added in 5.8',
      });
      await expect(chooseLoopAttach('configure', () => hasLoopConfigure(old))).rejects.toThrow(
        'LOOPVOL_LOOP_ATTACH=configure: this kernel has no LOOP_CONFIGURE',
      );
    }
    // Any other answer is not a kernel without the call: it is reported, not guessed at.
    await expect(hasLoopConfigure(await libcWithout('EPERM'))).rejects.toThrow('EPERM');
    expect((await forced('set-fd')).loopAttach).toBe('set-fd');
    expect((await forced('tools')).loopAttach).toBe('tools');
    await expect(selectKernelOps('syscalls', 'ioctl')).rejects.toThrow(
      'LOOPVOL_LOOP_ATTACH=ioctl: use auto, configure, set-fd, tools',
    );
    await expect(selectKernelOps('tools', 'set-fd')).rejects.toThrow('LOOPVOL_SYSCALLS=tools');
  });

  describe.each([
    ['configure', () => forced('configure')],
    ['set-fd', () => forced('set-fd')],
    ['tools', async () => toolOps],
  ] as [string, () => Promise<KernelOps>][])('%s', (via, select) => {
    let selected: KernelOps;
    beforeAll(async () => {
      selected = await select();
    });
    const ops = () => selected;
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
      expect(readLoop(device)).toEqual({ device, backingFile: image, autoclear: false });
      expect(await sysfs(device)).toEqual({ dio: '1', blockSize: '512', readOnly: '0' });

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

    it('attaches buffered with 4096-byte blocks when asked, and detaches', async () => {
      const { image, mountPoint } = await formatted('large-blocks');
      const device = await ops().attachLoop(image, { directIo: false, blockSize: 4096 });
      expect(readLoop(device)).toEqual({ device, backingFile: image, autoclear: false });
      expect(await sysfs(device)).toEqual({ dio: '0', blockSize: '4096', readOnly: '0' });
      await ops().mount(device, mountPoint, 'ext4', ['ro']);
      await expect(writeFile(join(mountPoint, 'f'), 'x')).rejects.toThrow('EROFS');
      await ops().unmount(mountPoint);
      await ops().detachLoop(device);
      await expect.poll(() => readLoop(device), { timeout: 5_000 }).toBeUndefined();
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

    it('binds a mounted filesystem read-only, nosuid, nodev, noexec elsewhere, and unbinds it', async () => {
      const { image, mountPoint } = await formatted('bind');
      const bound = join(dir, `${via}-bind-view`);
      await mkdir(bound);
      const device = await ops().attachLoop(image, { directIo: true });
      try {
        await ops().mount(device, mountPoint, 'ext4', ['nosuid', 'nodev']);
        await writeFile(join(mountPoint, 'f'), 'live');
        await ops().bindReadOnly(mountPoint, bound);
        const perMount = (await readFile('/proc/self/mountinfo', 'utf8'))
          .split('\n')
          .find((l) => l.split(' ')[4] === bound);
        expect(perMount?.split(' ')[5]?.split(',')).toEqual(
          expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']),
        );
        expect(await readFile(join(bound, 'f'), 'utf8')).toBe('live');
        await expect(writeFile(join(bound, 'g'), 'x')).rejects.toThrow(/EROFS/);
        // Only the bind is read-only: the volume stays writable.
        await writeFile(join(mountPoint, 'g'), 'x');
        await ops().unmount(bound);
        expect(isMountPoint(bound)).toBe(false);
        await ops().unmount(mountPoint);
      } finally {
        await ops().detachLoop(device);
      }
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

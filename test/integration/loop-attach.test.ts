import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { LOOP_ATTACH_PATHS } from '../../src/system/kernel-ops.js';
import { readLoop } from '../../src/system/loop-sysfs.js';
import { ok } from '../helpers/calls.js';
import { kernelStateUnder } from '../helpers/kernel.js';
import { BIN, pluginCases } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const ID = 'h'.repeat(64);

/** The loop device's settings the attach made, as sysfs shows them. */
async function loopSettings(device: string) {
  const name = device.slice('/dev/'.length);
  const read = async (file: string) => (await readFile(`/sys/block/${name}/${file}`, 'utf8')).trim();
  return {
    autoclear: readLoop(device)?.autoclear,
    dio: await read('loop/dio'),
    blockSize: await read('queue/logical_block_size'),
    readOnly: await read('ro'),
  };
}

/**
 * The daemon on each loop attach path, forced with LOOPVOL_LOOP_ATTACH as an operator (or a test
 * of an older kernel's path on this one) would: every path mounts, writes, unmounts and detaches
 * alike, and the device it makes has what LOOP_CONFIGURE gives it.
 */
describe.runIf(storageAvailable())('loop attach paths through the daemon', () => {
  const cases = pluginCases();

  it.each(LOOP_ATTACH_PATHS)(
    'LOOPVOL_LOOP_ATTACH=%s: says so once, and volumes go through their lifecycle',
    async (path) => {
      await cases.begin(`attach-${path}`);
      const p = await cases.start({ env: { LOOPVOL_LOOP_ATTACH: path }, args: ['--spares', '0'] });
      const chosen = p
        .logs()
        .split('\n')
        .filter((l) => l.includes('"loopAttach"'));
      expect(chosen).toHaveLength(1);
      expect(JSON.parse(chosen[0] as string)).toMatchObject({
        loopAttach: path,
        reason: `LOOPVOL_LOOP_ATTACH=${path}`,
        kernel: expect.stringMatching(/^\d+\.\d+/),
      });

      await ok(p, 'VolumeDriver.Create', { Name: 'rw', Opts: { size: '64M' } });
      await ok(p, 'VolumeDriver.Create', { Name: 'ro', Opts: { size: '64M', mountopts: 'ro' } });
      const rw = String((await ok(p, 'VolumeDriver.Mount', { Name: 'rw', ID })).Mountpoint);
      const ro = String((await ok(p, 'VolumeDriver.Mount', { Name: 'ro', ID })).Mountpoint);
      await writeFile(join(rw, 'data'), 'kept');
      await expect(writeFile(join(ro, 'data'), 'x')).rejects.toThrow('EROFS');
      for (const name of ['rw', 'ro']) {
        const status = (await ok(p, 'VolumeDriver.Get', { Name: name })).Volume as {
          Status: { loopDevice: string };
        };
        // The filesystem's 4 KiB blocks, direct I/O, writable device (ro is the mount's), no autoclear.
        expect(await loopSettings(status.Status.loopDevice)).toEqual({
          autoclear: false,
          dio: '1',
          blockSize: '4096',
          readOnly: '0',
        });
      }
      await ok(p, 'VolumeDriver.Unmount', { Name: 'rw', ID });
      await ok(p, 'VolumeDriver.Unmount', { Name: 'ro', ID });
      expect(await kernelStateUnder(p.dataRoot)).toEqual({ mounts: [], loops: [] });

      // Mounted again (a new device), the data is there.
      const again = String((await ok(p, 'VolumeDriver.Mount', { Name: 'rw', ID })).Mountpoint);
      expect(await readFile(join(again, 'data'), 'utf8')).toBe('kept');
      await ok(p, 'VolumeDriver.Unmount', { Name: 'rw', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'rw' });
      await ok(p, 'VolumeDriver.Remove', { Name: 'ro' });
      expect(await kernelStateUnder(p.dataRoot)).toEqual({ mounts: [], loops: [] });
      expect(await p.stop()).toBe(0);
    },
  );

  it('doctor shows the kernel release and the path it attaches with, or why a forced one is wrong', async () => {
    const dir = await cases.begin('attach-doctor');
    const loopAttach = async (env: Record<string, string>) => {
      const args = [BIN, 'doctor', '--json', '--socket', join(dir, 'none.sock'), '--data-root', dir];
      const { stdout } = await execa(process.execPath, args, { env, reject: false });
      return (JSON.parse(stdout) as { subject: string }[]).find((f) => f.subject === 'loop attach');
    };
    const kernel = (await readFile('/proc/sys/kernel/osrelease', 'utf8')).trim();
    expect(await loopAttach({})).toEqual({
      status: 'ok',
      subject: 'loop attach',
      detail: `Linux ${kernel}: LOOP_CONFIGURE (the kernel has it)`,
    });
    expect(await loopAttach({ LOOPVOL_LOOP_ATTACH: 'set-fd' })).toMatchObject({
      status: 'ok',
      detail: `Linux ${kernel}: LOOP_SET_FD + LOOP_SET_STATUS64 (LOOPVOL_LOOP_ATTACH=set-fd)`,
    });
    expect(await loopAttach({ LOOPVOL_LOOP_ATTACH: 'tools' })).toMatchObject({
      detail: `Linux ${kernel}: losetup (LOOPVOL_LOOP_ATTACH=tools)`,
    });
    expect(await loopAttach({ LOOPVOL_LOOP_ATTACH: 'ioctl' })).toMatchObject({
      status: 'fail',
      detail: `Linux ${kernel}: LOOPVOL_LOOP_ATTACH=ioctl: use auto, configure, set-fd, tools`,
    });
  });

  it('refuses to start on a path it does not know, naming the ones it does', async () => {
    await cases.begin('attach-bogus');
    await expect(cases.start({ env: { LOOPVOL_LOOP_ATTACH: 'ioctl' } })).rejects.toThrow(
      'LOOPVOL_LOOP_ATTACH=ioctl: use auto, configure, set-fd, tools',
    );
  });
});

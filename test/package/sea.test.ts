import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/** The single executable (npm run build:sea): Node.js, loopvol and koffi's native addon in one file. */
describe.runIf(storageAvailable())('single executable', () => {
  let dir: string;
  const binary = () => join(dir, 'loopvol');

  beforeAll(async () => {
    dir = await makeTempDir('sea');
    await execa(process.execPath, [join(ROOT, 'scripts/build-sea.mjs'), dir], { cwd: ROOT });
  }, 180_000);
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  it('runs by itself, as loopvol and, through a link named dvdcli, as dvdcli', async () => {
    // An empty environment: nothing tells it where Node.js or loopvol's files are.
    const help = await execa(binary(), ['help'], { env: {}, extendEnv: false });
    expect(help.stdout).toContain('usage: loopvol <command>');
    expect(help.stderr).toBe('');
    const version = await execa(join(dir, 'dvdcli'), ['version'], { env: {}, extendEnv: false });
    expect(version.stdout).toMatch(/^SemVer: \d+\.\d+\.\d+$/m);
    expect(version.stdout).toContain(`Binary: ${binary()}`);
  });

  it('serves a volume lifecycle with system calls (its embedded FFI addon loads), and dvdcli drives it', async () => {
    const plugin = await startPlugin(dir, {
      bin: binary(),
      standalone: true,
      args: ['--spares', '0'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    try {
      const ok = async (method: string, body: object) => {
        const reply = await plugin.call(method, body);
        expect(reply.status, reply.raw).toBe(200);
        return reply.body;
      };
      await ok('VolumeDriver.Create', { Name: 'single', Opts: { size: '64M' } });
      const { Mountpoint } = (await ok('VolumeDriver.Mount', { Name: 'single', ID: 'x' })) as {
        Mountpoint: string;
      };
      await writeFile(join(Mountpoint, 'file'), 'data');
      await ok('VolumeDriver.Unmount', { Name: 'single', ID: 'x' });

      // dvdcli finds the daemon's socket (plugin.sock in the test dir) by the driver name "plugin".
      const dvdcli = (...args: string[]) =>
        execa(join(dir, 'dvdcli'), [...args, '--volumedriver=plugin', '--volumename=single'], {
          env: { LOOPVOL_PLUGIN_SOCKETS_DIR: dir },
        });
      const mounted = await dvdcli('mount');
      expect(mounted.stdout).toBe(Mountpoint);
      expect((await execa('cat', [join(Mountpoint, 'file')])).stdout).toBe('data');
      await dvdcli('unmount');
      await ok('VolumeDriver.Remove', { Name: 'single' });
      expect(plugin.logs()).not.toMatch(/using losetup, mount and umount processes/);
      expect(plugin.logs()).not.toMatch(/Warning/);
    } finally {
      expect(await plugin.stop()).toBe(0);
    }
    expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
  });
});

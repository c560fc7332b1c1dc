import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dockerSuite, execIn, IMAGE } from '../helpers/dockerd.js';
import { kernelStateUnder } from '../helpers/kernel.js';
import { startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

// Its own file, dockerd and temp dir: "no loop device left under tmp" then means exactly this volume.
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'dockerd']))(
  'loopvol killed and restarted under a running container',
  () => {
    const suite = dockerSuite('e2e-restart');

    it('survives kill -9 of the plugin; the restarted plugin unmounts at stop and exits cleanly', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'survivor', Driver: driver, DriverOpts: { size: '64M' } });
      const container = await docker.createContainer({
        Image: IMAGE,
        Cmd: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1; done"],
        HostConfig: { NetworkMode: 'none', Binds: ['survivor:/data'] },
      });
      await container.start();
      expect(await execIn(docker, container, 'echo before > /data/before')).toEqual({
        exitCode: 0,
        output: '',
      });

      await suite.plugin.kill();
      suite.earlierLogs = suite.plugin.logs();
      // The data path is the kernel's: it does not need the plugin at all.
      expect(await execIn(docker, container, 'echo while-down > /data/down && cat /data/before')).toEqual({
        exitCode: 0,
        output: 'before\n',
      });

      // Same socket and data root: the restart replaces the stale socket and keeps the holder.
      suite.plugin = await startPlugin(suite.tmp);
      const restarted = suite.plugin;
      const status = async () => {
        const reply = await restarted.call('VolumeDriver.Get', { Name: 'survivor' });
        expect(reply.status, reply.raw).toBe(200);
        return (reply.body.Volume as { Status: Record<string, unknown> }).Status;
      };
      expect(await status()).toMatchObject({ mounted: true, holders: 1 });
      expect(
        await execIn(
          docker,
          container,
          'cat /data/before /data/down && echo after > /data/after && cat /data/after',
        ),
      ).toEqual({ exitCode: 0, output: 'before\nwhile-down\nafter\n' });

      // dockerd sends Unmount with the mount ID recorded before the kill.
      await container.stop({ t: 10 });
      expect(await status()).toMatchObject({ mounted: false, holders: 0 });
      expect(await kernelStateUnder(restarted.dataRoot)).toEqual({ mounts: [], loops: [] });
      expect((await kernelStateUnder(suite.tmp)).loops).toEqual([]);

      expect(await restarted.stop()).toBe(0);
      expect(existsSync(restarted.socket)).toBe(false);
    });
  },
);

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Dockerd,
  execIn,
  IMAGE,
  importBusyboxImage,
  installPluginSpec,
  type PluginSpec,
  removeAllContainers,
  runAll,
  startDockerd,
} from '../helpers/dockerd.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

/**
 * dockerd restarted with --live-restore: the container keeps running on its volume across the
 * restart, loopvol keeps the volume mounted with its holder, and the container's later stop (an
 * Unmount with the mount ID from before the restart) releases it.
 */
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'dockerd']))(
  'dockerd restarted with --live-restore under a running container',
  () => {
    const LIVE = ['--live-restore'];
    let tmp: string;
    let plugin: PluginProcess;
    let spec: PluginSpec;
    let dockerd: Dockerd | undefined;

    beforeAll(async () => {
      tmp = await makeTempDir('e2e-live-restore');
      plugin = await startPlugin(tmp);
      spec = await installPluginSpec(plugin.socket);
      dockerd = await startDockerd(tmp, 60_000, LIVE);
      await importBusyboxImage(dockerd.docker, tmp, IMAGE);
    });
    afterAll(() =>
      runAll([
        async () => dockerd && (await removeAllContainers(dockerd.docker)),
        async () => dockerd?.stop(),
        async () => plugin?.stop(),
        async () => spec?.remove(),
        async () => tmp && (await cleanupTempDir(tmp)),
      ]),
    );

    const status = async () => {
      const reply = await plugin.call('VolumeDriver.Get', { Name: 'live' });
      expect(reply.status, reply.raw).toBe(200);
      return (reply.body.Volume as { Status: Record<string, unknown> }).Status;
    };

    it('keeps the volume mounted and its holder through the restart, and releases it at stop', async () => {
      if (!dockerd) throw new Error('dockerd did not start');
      await dockerd.docker.createVolume({ Name: 'live', Driver: spec.driver, DriverOpts: { size: '64M' } });
      const created = await dockerd.docker.createContainer({
        Image: IMAGE,
        Cmd: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 1; done"],
        HostConfig: { NetworkMode: 'none', Binds: ['live:/data'] },
      });
      await created.start();
      expect(await execIn(dockerd.docker, created, 'echo before > /data/f && cat /data/f')).toEqual({
        exitCode: 0,
        output: 'before\n',
      });
      expect(await status()).toMatchObject({ mounted: true, holders: 1 });

      await dockerd.stop();
      // dockerd is gone; the container and its mount are not.
      expect(await status()).toMatchObject({ mounted: true, holders: 1 });
      expect((await kernelStateUnder(plugin.dataRoot)).mounts).toHaveLength(1);

      dockerd = await startDockerd(tmp, 60_000, LIVE);
      const container = dockerd.docker.getContainer(created.id);
      expect((await container.inspect()).State.Running).toBe(true);
      expect(await execIn(dockerd.docker, container, 'cat /data/f && echo after >> /data/f')).toEqual({
        exitCode: 0,
        output: 'before\n',
      });
      expect(await status()).toMatchObject({ mounted: true, holders: 1 });

      await container.stop({ t: 10 });
      expect(await status()).toMatchObject({ mounted: false, holders: 0 });
      expect(await kernelStateUnder(plugin.dataRoot)).toEqual({ mounts: [], loops: [] });
    });
  },
);

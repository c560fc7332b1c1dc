import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { filesystemUsage } from '../../src/system/fsstat.js';
import { dockerSuite, runContainer } from '../helpers/dockerd.js';
import { smallFilesystem } from '../helpers/smallfs.js';
import { storageAvailable } from '../helpers/tools.js';

// The plugin's data root sits on a 256 MiB filesystem the test fills from the host side.
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'dockerd']))(
  'a container filling a sparse volume while the host filesystem is full',
  () => {
    let host = '';
    const suite = dockerSuite('e2e-diskfull', [], async (tmp) => {
      host = await smallFilesystem(tmp, 'host', 256);
      // The sparse volume and the other one promise more than this filesystem holds, on purpose.
      return ['--data-root', join(host, 'root'), '--overcommit', '2'];
    });

    it('gets an I/O error; the plugin keeps serving and reports it; everything recovers', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'sparse', Driver: driver, DriverOpts: { size: '200M' } });
      await docker.createVolume({ Name: 'other', Driver: driver, DriverOpts: { size: '32M' } });
      // Leave the host almost nothing: the sparse image cannot grow by what the container writes.
      const { freeBytes } = filesystemUsage(host);
      await execa('fallocate', ['--length', String(freeBytes - 2 * 1024 * 1024), join(host, 'filler')]);
      const fill = await runContainer(
        docker,
        'dd if=/dev/urandom of=/data/big bs=1M count=150 conv=fsync; echo "dd exit $?"',
        { Binds: ['sparse:/data'] },
      );
      expect(fill.exitCode).toBe(0);
      expect(fill.output).toMatch(/(Input\/output error|No space left on device)/);
      expect(fill.output).not.toContain('dd exit 0');

      // Nothing else broke: the container's stop unmounted the volume although no metadata could be
      // written, and the plugin answers and reports the condition.
      const get = await suite.plugin.call('VolumeDriver.Get', { Name: 'sparse' });
      expect(get.status).toBe(200);
      expect(get.body.Volume).toMatchObject({
        Status: { mounted: false, holders: 0, warning: expect.stringMatching(/writes will fail/) },
      });
      // A new Mount is refused while the host is full (its mountpoint cannot even be made, and
      // loopvol never mounts what it cannot record), saying why; it works again once there is space.
      await expect(runContainer(docker, 'true', { Binds: ['other:/data'] })).rejects.toThrow(
        'cannot mount volume other: no space left on the host filesystem holding the data root: free space there and try again',
      );
      await rm(join(host, 'filler'));
      const other = await runContainer(docker, 'echo fine > /data/f && cat /data/f', {
        Binds: ['other:/data'],
      });
      expect(other).toEqual({ exitCode: 0, output: 'fine\n' });
      const after = await runContainer(docker, 'echo recovered > /data/r && cat /data/r', {
        Binds: ['sparse:/data'],
      });
      expect(after).toEqual({ exitCode: 0, output: 'recovered\n' });
      await docker.getVolume('sparse').remove();
      await docker.getVolume('other').remove();
    });
  },
);

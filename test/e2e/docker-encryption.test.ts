import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  dockerSuite,
  IMAGE_DATA_CONTENT,
  IMAGE_DATA_FILE,
  IMAGE_WITH_DATA,
  runContainer,
} from '../helpers/dockerd.js';
import { storageAvailable } from '../helpers/tools.js';

// Its own dockerd: the plugin runs with a master key.
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'dockerd']))(
  'encrypted volumes through Docker',
  () => {
    const suite = dockerSuite('e2e-encrypt', ['--spares', '0'], async (tmp) => {
      const key = join(tmp, 'master.key');
      await writeFile(key, randomBytes(64), { mode: 0o600 });
      return ['--key-file', key];
    });

    it('serves the encrypted directory to containers; the image never holds the plain text', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({
        Name: 'sealed',
        Driver: driver,
        DriverOpts: { encrypt: 'true', size: '64M' },
      });
      const marker = `MARKER-${randomBytes(8).toString('hex')}`;
      // Docker copies the image's content at the mount path into the (empty) encrypted directory.
      const first = await runContainer(
        docker,
        `cat ${IMAGE_DATA_FILE} && echo ${marker} > /data/${marker} && ls /data`,
        { NetworkMode: 'none', Binds: ['sealed:/data'] },
        IMAGE_WITH_DATA,
      );
      expect(first).toEqual({ exitCode: 0, output: `${IMAGE_DATA_CONTENT}${marker}\nhello.txt\n` });
      const again = await runContainer(docker, `cat /data/${marker}`, {
        NetworkMode: 'none',
        Binds: ['sealed:/data'],
      });
      expect(again).toEqual({ exitCode: 0, output: `${marker}\n` });
      const status = (await docker.getVolume('sealed').inspect()) as unknown as {
        Status: Record<string, unknown>;
      };
      expect(status.Status).toMatchObject({ encrypted: true, mounted: false });
      const image = join(suite.plugin.dataRoot, 'volumes', 'sealed', 'disk.img');
      expect((await execa('grep', ['-c', '-a', '-F', 'MARKER-', image], { reject: false })).exitCode).toBe(1);
      await docker.getVolume('sealed').remove();
    });
  },
);

import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import {
  dockerSuite,
  execIn,
  IMAGE,
  IMAGE_DATA_CONTENT,
  IMAGE_DATA_FILE,
  IMAGE_WITH_DATA,
  runAll,
  runContainer,
  startContainer,
} from '../helpers/dockerd.js';
import { storageAvailable } from '../helpers/tools.js';

const MiB = 1024 * 1024;
/** The plugin's default size, set small so implicit creates are cheap and recognisable. */
const DEFAULT_SIZE = '96M';
/** A container that runs until `docker stop`; PID 1 ignores SIGTERM unless it traps it. */
const RUN_UNTIL_STOPPED = "trap 'exit 0' TERM; while true; do sleep 1; done";

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'dockerd']))(
  'loopvol under a real dockerd',
  () => {
    const suite = dockerSuite('e2e', ['--default-size', DEFAULT_SIZE]);
    const docker = () => suite.env.docker;
    const driver = () => suite.env.driver;

    const start = (script: string, hostConfig: Docker.HostConfig, image = IMAGE) =>
      startContainer(docker(), script, hostConfig, image);
    const runToEnd = (script: string, hostConfig: Docker.HostConfig, image = IMAGE) =>
      runContainer(docker(), script, hostConfig, image);

    async function createVolume(name: string, opts: Record<string, string>): Promise<void> {
      await docker().createVolume({ Name: name, Driver: driver(), DriverOpts: opts });
    }

    /** What the plugin itself reports, bypassing dockerd's cache. */
    async function pluginStatus(name: string): Promise<Record<string, unknown>> {
      const reply = await suite.plugin.call('VolumeDriver.Get', { Name: name });
      expect(reply.status, reply.raw).toBe(200);
      return (reply.body.Volume as { Status: Record<string, unknown> }).Status;
    }

    const volumeDir = (name: string) => join(suite.plugin.dataRoot, 'volumes', name);

    it('creates ext4 and xfs volumes with options, and docker volume inspect shows their Status', async () => {
      await createVolume('opts-ext4', { size: '100M', fs: 'ext4' });
      await createVolume('opts-xfs', { size: '320M', fs: 'xfs' });

      const ext4 = await docker().getVolume('opts-ext4').inspect();
      expect(ext4.Driver).toBe(driver());
      expect(ext4.Status).toMatchObject({ size: 100 * MiB, fs: 'ext4', mounted: false, holders: 0 });
      const xfs = await docker().getVolume('opts-xfs').inspect();
      expect(xfs.Status).toMatchObject({ size: 320 * MiB, fs: 'xfs', mounted: false, holders: 0 });

      // The filesystem a container sees is the one asked for.
      const seen = await runToEnd('stat -f -c %T /a; stat -f -c %T /b', {
        Binds: ['opts-ext4:/a', 'opts-xfs:/b'],
      });
      expect(seen.exitCode, seen.output).toBe(0);
      expect(seen.output.split('\n')).toEqual(['ext2/ext3', 'xfs', '']);
    });

    it('keeps what one container writes for the next container', async () => {
      await createVolume('persist', { size: '64M' });
      const write = await runToEnd('echo kept > /data/note.txt && sync', { Binds: ['persist:/data'] });
      expect(write.exitCode, write.output).toBe(0);
      expect(await pluginStatus('persist')).toMatchObject({ mounted: false, holders: 0 });

      const read = await runToEnd('cat /data/note.txt', { Binds: ['persist:/data:ro'] });
      expect(read).toEqual({ exitCode: 0, output: 'kept\n' });
    });

    it('enforces the volume size: writing past it fails with ENOSPC', async () => {
      await createVolume('small', { size: '64M' });
      const dd = await runToEnd('dd if=/dev/zero of=/data/big bs=1M count=200', { Binds: ['small:/data'] });
      expect(dd.exitCode).not.toBe(0);
      expect(dd.output).toContain('No space left on device');

      const used = await runToEnd('du -m /data/big | cut -f1', { Binds: ['small:/data'] });
      expect(Number(used.output.trim())).toBeLessThan(64);
    });

    // Mesos' Docker containerizer: `docker run --volume-driver=loopvol -v NAME:<sandbox path>:rw`, one
    // task after another on the same external volume (Marathon restarts the task elsewhere or here).
    it('serves the Mesos Docker containerizer: --volume-driver with a sandbox path and :rw', async () => {
      const bind = 'mesos-pg:/mnt/mesos/sandbox/pgdata:rw';
      const first = await runToEnd('echo task-1 > /mnt/mesos/sandbox/pgdata/PG_VERSION', {
        VolumeDriver: driver(),
        Binds: [bind],
      });
      expect(first).toEqual({ exitCode: 0, output: '' });
      const second = await runToEnd('cat /mnt/mesos/sandbox/pgdata/PG_VERSION', {
        VolumeDriver: driver(),
        Binds: [bind],
      });
      expect(second).toEqual({ exitCode: 0, output: 'task-1\n' });
      expect(await pluginStatus('mesos-pg')).toMatchObject({ size: 96 * MiB, mounted: false, holders: 0 });
    });

    it('creates a volume implicitly from docker run --volume-driver, with the default size', async () => {
      await expect(docker().getVolume('implicit').inspect()).rejects.toMatchObject({ statusCode: 404 });
      const result = await runToEnd('echo made > /data/x && cat /data/x', {
        VolumeDriver: driver(),
        Binds: ['implicit:/data'],
      });
      expect(result).toEqual({ exitCode: 0, output: 'made\n' });

      const inspected = await docker().getVolume('implicit').inspect();
      expect(inspected.Driver).toBe(driver());
      expect(inspected.Status).toMatchObject({ size: 96 * MiB, fs: 'ext4' });
    });

    it('copies image content into a fresh volume (no lost+found stops it)', async () => {
      await createVolume('copyup', { size: '64M', fs: 'ext4' });
      const first = await runToEnd(
        `cat ${IMAGE_DATA_FILE}; ls -a /data`,
        { Binds: ['copyup:/data'] },
        IMAGE_WITH_DATA,
      );
      expect(first.exitCode, first.output).toBe(0);
      expect(first.output).toContain(IMAGE_DATA_CONTENT);
      expect(first.output).not.toContain('lost+found');

      // The copy landed in the volume, not in the container layer.
      const second = await runToEnd(`cat ${IMAGE_DATA_FILE}`, { Binds: ['copyup:/data'] });
      expect(second).toEqual({ exitCode: 0, output: IMAGE_DATA_CONTENT });
    });

    it('shares one volume between two running containers', async () => {
      await createVolume('shared', { size: '64M' });
      const a = await start(RUN_UNTIL_STOPPED, { Binds: ['shared:/data'] });
      const b = await start(RUN_UNTIL_STOPPED, { Binds: ['shared:/data'] });
      try {
        expect(await pluginStatus('shared')).toMatchObject({ mounted: true, holders: 2 });
        expect((await execIn(docker(), a, 'echo from-a > /data/a')).exitCode).toBe(0);
        expect(await execIn(docker(), b, 'cat /data/a && echo from-b > /data/b')).toEqual({
          exitCode: 0,
          output: 'from-a\n',
        });
        expect(await execIn(docker(), a, 'cat /data/b')).toEqual({ exitCode: 0, output: 'from-b\n' });

        await a.stop({ t: 10 });
        expect(await pluginStatus('shared')).toMatchObject({ mounted: true, holders: 1 });
        expect(await execIn(docker(), b, 'cat /data/a')).toEqual({ exitCode: 0, output: 'from-a\n' });
        await b.stop({ t: 10 });
        expect(await pluginStatus('shared')).toMatchObject({ mounted: false, holders: 0 });
      } finally {
        await runAll([() => a.remove({ force: true }), () => b.remove({ force: true })]);
      }
    });

    it('supports docker cp into and out of a running container, keeping one holder', async () => {
      await createVolume('cp', { size: '64M' });
      const container = await start(RUN_UNTIL_STOPPED, { Binds: ['cp:/data'] });
      try {
        const source = join(suite.tmp, 'cp-src');
        await mkdir(source, { recursive: true });
        await writeFile(join(source, 'copied.txt'), 'copied in\n');
        const tar = execa('tar', ['-C', source, '-c', 'copied.txt'], { buffer: { stdout: false } });
        await container.putArchive(tar.stdout as NodeJS.ReadableStream, { path: '/data' });
        await tar;
        expect(await execIn(docker(), container, 'cat /data/copied.txt')).toEqual({
          exitCode: 0,
          output: 'copied in\n',
        });

        const archive = await container.getArchive({ path: '/data/copied.txt' });
        const chunks: Buffer[] = [];
        for await (const chunk of archive) chunks.push(Buffer.from(chunk as Buffer));
        const extracted = await execa('tar', ['-xO', '-f', '-', 'copied.txt'], {
          input: Buffer.concat(chunks),
        });
        expect(extracted.stdout).toBe('copied in');

        // docker cp mounts and unmounts again under the container's mount ID: back to one reference.
        expect(await pluginStatus('cp')).toMatchObject({ mounted: true, holders: 1 });
        const holders = JSON.parse(await readFile(join(volumeDir('cp'), 'holders.json'), 'utf8'));
        expect(Object.values(holders)).toEqual([1]);

        await container.stop({ t: 10 });
        expect(await pluginStatus('cp')).toMatchObject({ mounted: false, holders: 0 });
      } finally {
        await container.remove({ force: true });
      }
    });

    it('refuses docker volume rm while a container uses the volume, and removes it after', async () => {
      await createVolume('removable', { size: '64M' });
      const container = await start(RUN_UNTIL_STOPPED, { Binds: ['removable:/data'] });
      try {
        await expect(docker().getVolume('removable').remove()).rejects.toMatchObject({ statusCode: 409 });
        expect(existsSync(volumeDir('removable'))).toBe(true);
        expect(await pluginStatus('removable')).toMatchObject({ mounted: true, holders: 1 });
      } finally {
        await container.remove({ force: true });
      }
      await docker().getVolume('removable').remove();
      expect(existsSync(volumeDir('removable'))).toBe(false);
      const listed = await docker().listVolumes();
      expect((listed.Volumes ?? []).map((v) => v.Name)).not.toContain('removable');
      const reply = await suite.plugin.call('VolumeDriver.Get', { Name: 'removable' });
      expect(reply.status).not.toBe(200);
    });
  },
);

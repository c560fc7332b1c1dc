import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filesystemUsage } from '../../src/system/fsstat.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, startPlugin } from '../helpers/plugin.js';
import { smallFilesystem } from '../helpers/smallfs.js';
import { storageAvailable } from '../helpers/tools.js';

const MiB = 1024 * 1024;

/** Writes 1 MiB chunks with fsync until the kernel refuses; returns the error code and bytes written. */
async function fill(path: string, limitMiB: number): Promise<{ code: string | undefined; written: number }> {
  const handle = await open(path, 'w');
  const chunk = Buffer.alloc(MiB, 0xab);
  let written = 0;
  try {
    for (let i = 0; i < limitMiB; i++) {
      await handle.write(chunk);
      await handle.sync();
      written += MiB;
    }
    return { code: undefined, written };
  } catch (err) {
    return { code: (err as NodeJS.ErrnoException).code, written };
  } finally {
    await handle.close().catch(() => undefined);
  }
}

describe.runIf(storageAvailable())('a data root on a filesystem that fills up', () => {
  let dir: string;
  let host: string;
  let plugin: PluginProcess;
  const status = async (name: string) =>
    (
      (await plugin.call('VolumeDriver.Get', { Name: name })).body.Volume as {
        Status: Record<string, unknown>;
      }
    ).Status;

  beforeAll(async () => {
    dir = await makeTempDir('diskfull');
    host = await smallFilesystem(dir, 'host', 200);
    // Sparse volumes here promise more than the filesystem holds, on purpose: the overcommit test.
    plugin = await startPlugin(dir, { dataRoot: join(host, 'root'), args: ['--overcommit', '4'] });
  });
  afterAll(async () => {
    await plugin?.stop();
    if (dir) await cleanupTempDir(dir);
  });

  it('refuses a preallocated volume larger than the free space, clearly and without leftovers', async () => {
    const reply = await plugin.call('VolumeDriver.Create', {
      Name: 'big',
      Opts: { size: '300M', sparse: 'false' },
    });
    expect(reply.status).not.toBe(200);
    expect(reply.body.Err).toMatch(
      /^cannot create volume big: a preallocated 300M does not fit in the .* left on the data root's filesystem \(.* free, less/,
    );
    expect(await readdir(join(host, 'root', 'staging'))).toEqual([]);
    expect(await readdir(join(host, 'root', 'volumes'))).toEqual([]);
    expect(await kernelStateUnder(join(host, 'root'))).toEqual({ mounts: [], loops: [] });
  });

  it('lets sparse volumes overcommit the host, and says so in Status', async () => {
    for (const name of ['s1', 's2', 's3']) {
      const reply = await plugin.call('VolumeDriver.Create', { Name: name, Opts: { size: '150M' } });
      expect(reply.status, reply.raw).toBe(200);
    }
    expect(await status('s1')).toMatchObject({ warning: expect.stringMatching(/may still grow by/) });
  });

  it('gives a writer I/O errors when the host is full, while the plugin keeps serving', async () => {
    const { Mountpoint } = (await plugin.call('VolumeDriver.Mount', { Name: 's1', ID: 'writer' })).body;
    // s3 has been mounted before, so its mountpoint exists; s2 never was.
    expect((await plugin.call('VolumeDriver.Mount', { Name: 's3', ID: 'early' })).status).toBe(200);
    expect((await plugin.call('VolumeDriver.Unmount', { Name: 's3', ID: 'early' })).status).toBe(200);
    // Fill the host filesystem from outside the volume, then write inside it.
    const hostFiller = await fill(join(host, 'filler'), 400);
    expect(hostFiller.code).toBe('ENOSPC');
    const inside = await fill(join(String(Mountpoint), 'data'), 150);
    expect(['EIO', 'ENOSPC', 'EROFS']).toContain(inside.code);

    expect(plugin.child.exitCode).toBeNull();
    const full = await status('s1');
    expect(full).toMatchObject({
      mounted: true,
      holders: 1,
      warning: expect.stringMatching(/writes will fail/),
    });
    expect(full.hostFree).toBeLessThan(5 * MiB);
    expect((await plugin.call('VolumeDriver.List', {})).status).toBe(200);
    const refused = await plugin.call('VolumeDriver.Create', { Name: 'more', Opts: { size: '16M' } });
    expect(refused.status).not.toBe(200);
    expect(refused.body.Err).toMatch(/cannot create volume more/);
    // No Mount while the host is full: loopvol never mounts what it cannot record.
    const never = await plugin.call('VolumeDriver.Mount', { Name: 's2', ID: 'late' });
    expect(never.body.Err).toBe(
      'cannot mount volume s2: no space left on the host filesystem holding the data root: free space there and try again',
    );
    const unrecorded = await plugin.call('VolumeDriver.Mount', { Name: 's3', ID: 'late' });
    expect(unrecorded.body.Err).toBe(
      'cannot mount volume s3: recording the mount failed: no space left on the host filesystem holding the data root: free space there and try again',
    );
    expect(await status('s3')).toMatchObject({ mounted: false, holders: 0 });
    expect((await kernelStateUnder(join(host, 'root'))).mounts).toEqual([String(Mountpoint)]);

    // Free the host: the volume unmounts and is removed; its space comes back.
    await rm(join(host, 'filler'));
    expect((await plugin.call('VolumeDriver.Unmount', { Name: 's1', ID: 'writer' })).status).toBe(200);
    const before = filesystemUsage(host).freeBytes;
    for (const name of ['s1', 's2', 's3']) {
      expect((await plugin.call('VolumeDriver.Remove', { Name: name })).status).toBe(200);
    }
    expect(filesystemUsage(host).freeBytes).toBeGreaterThan(before);
    expect(await kernelStateUnder(join(host, 'root'))).toEqual({ mounts: [], loops: [] });
  });
});

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskBackend } from '../../src/backend/disk.js';
import { LoopBackend } from '../../src/backend/loop.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import { VolumeService } from '../../src/volume/service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { TEST_DEFAULTS, testKernelOps } from '../helpers/int-service.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { smallFilesystem } from '../helpers/smallfs.js';
import { storageAvailable } from '../helpers/tools.js';

/** The space guard on a data root whose filesystem is small enough to reach its limits. */
describe.runIf(storageAvailable())('space guard on a small data root', () => {
  let dir: string;
  let host: string;
  beforeAll(async () => {
    dir = await makeTempDir('space-guard');
    host = await smallFilesystem(dir, 'host', 256);
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  function open(root: string, overcommit: number, log = silentLog) {
    const service = new VolumeService(
      new Store(new Layout(root)),
      { loop: new LoopBackend(testKernelOps), disk: new DiskBackend([], testKernelOps) },
      TEST_DEFAULTS,
      log,
      overcommit,
    );
    return service;
  }

  it("admits a clone at its source's size, before copying anything", async () => {
    const root = join(host, 'clone');
    const service = open(root, 1);
    service.clones = {
      sourceOf: () => {
        throw new Error('the copy must not start');
      },
      sizeOf: async () => 200 * 1024 * 1024,
    };
    await service.create('big', { size: '100M' }, silentLog);
    await expect(service.create('copy', { from: 'big' }, silentLog)).rejects.toMatchObject({
      status: 409,
      message: expect.stringMatching(/^cannot create volume copy: 200M more would bring the volumes/),
    });
    expect(await readdir(join(root, 'staging'))).toEqual([]);
    await service.remove('big', silentLog);
    await service.idle();
  });

  it('holds sparse volumes to overcommit x the filesystem, and says why with the numbers', async () => {
    const root = join(host, 'ratio');
    const service = open(root, 1);
    await service.create('a', { size: '100M' }, silentLog);
    await service.create('b', { size: '100M' }, silentLog);
    await expect(service.create('c', { size: '100M' }, silentLog)).rejects.toMatchObject({
      status: 409,
      message: expect.stringMatching(
        /^cannot create volume c: 100M more would bring the volumes on the data root's filesystem to 300M, over the .* allowed \(--overcommit 1 × .*\): remove volumes/,
      ),
    });
    expect((await service.list()).map((v) => v.Name)).toEqual(['a', 'b']);
    expect(await readdir(join(root, 'staging'))).toEqual([]);
    expect((await service.get('a')).Status).toMatchObject({ hostProvisioned: 200 * 1024 * 1024 });

    // A removal gives its size back; a larger ratio admits more over the same filesystem.
    await service.remove('b', silentLog);
    await service.create('c', { size: '100M' }, silentLog);
    const generous = open(root, 3);
    await generous.create('d', { size: '300M' }, silentLog);
    for (const name of ['a', 'c', 'd']) await generous.remove(name, silentLog);
    await generous.idle();
  });

  it('refuses a preallocated volume larger than the free space, and warns once the filesystem is 90% used', async () => {
    const root = join(host, 'full');
    const captured = captureLog();
    // Room in the ratio for the small volumes: what fills the filesystem here is the preallocated one.
    const service = open(root, 1.2, captured.log);
    await expect(service.create('huge', { size: '300M', sparse: 'false' }, silentLog)).rejects.toMatchObject({
      status: 409,
      message: expect.stringMatching(/^cannot create volume huge: a preallocated 300M does not fit in the /),
    });
    await service.create('thick', { size: '210M', sparse: 'false' }, silentLog);
    await service.create('small1', { size: '16M' }, silentLog);
    await service.create('small2', { size: '16M' }, silentLog);
    const warnings = captured.lines().filter((l) => String(l.msg).includes('over 90% used'));
    expect(warnings).toHaveLength(1);
    for (const name of ['thick', 'small1', 'small2']) await service.remove(name, silentLog);
    await service.idle();
  });
});

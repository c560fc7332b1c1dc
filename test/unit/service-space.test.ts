import { readdir } from 'node:fs/promises';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { HostSpace } from '../../src/volume/space-guard.js';
import { fakeServices } from '../helpers/fake-service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';

/**
 * The space guard as the service applies it, on a data root of a size the test picks. The service
 * reads the data root's filesystem with statfs (system/fsstat.ts) and takes no way to inject it, so
 * the module is mocked here: every statfs answers `host`.
 */
const MiB = 1024 * 1024;
let host: HostSpace;
vi.mock('../../src/system/fsstat.js', async (actual) => ({
  ...(await actual<typeof import('../../src/system/fsstat.js')>()),
  filesystemUsage: () => host,
}));

/** A filesystem of `totalMiB` with `freeMiB` free. */
const hostOf = (totalMiB: number, freeMiB = totalMiB): HostSpace => ({
  totalBytes: totalMiB * MiB,
  usedBytes: (totalMiB - freeMiB) * MiB,
  freeBytes: freeMiB * MiB,
});

const refusal = (message: RegExp) => ({ kind: 'no-space', message: expect.stringMatching(message) });

const fresh = fakeServices();

describe('VolumeService space guard on a data root of a chosen size', () => {
  beforeEach(() => {
    host = hostOf(256);
  });

  it('holds sparse volumes to overcommit x the filesystem, and says why with the numbers', async () => {
    const first = await fresh({ overcommit: 1 });
    const { service, backend, store } = first;
    await service.create('a', { size: '100M' }, silentLog);
    await service.create('b', { size: '100M' }, silentLog);
    await expect(service.create('c', { size: '100M' }, silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot create volume c: 100M more would bring the volumes on the data root's filesystem to 300M, over the 256M allowed \(--overcommit 1 × 256M\): remove volumes or snapshots, grow the filesystem or raise --overcommit$/,
      ),
    );
    expect(backend.callsOf('provision')).toHaveLength(2);
    expect(await readdir(store.layout.staging)).toEqual([]);
    expect((await service.get('a')).Status).toMatchObject({ hostProvisioned: 200 * MiB });

    // A removal gives its size back; a larger ratio admits more over the same filesystem.
    await service.remove('b', silentLog);
    await service.create('c', { size: '100M' }, silentLog);
    const generous = await fresh({ dir: first.dir, kernel: first.kernel, overcommit: 3 });
    await generous.service.create('d', { size: '300M' }, silentLog);
  });

  it('refuses a preallocated volume larger than the free space', async () => {
    host = hostOf(256, 200);
    const { service, backend } = await fresh({ overcommit: 2 });
    await expect(service.create('huge', { size: '300M', sparse: 'false' }, silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot create volume huge: a preallocated 300M does not fit in the 200M left on the data root's filesystem \(200M free, less 0B promised to sparse volumes and work under way\): free space there, or ask for a sparse volume$/,
      ),
    );
    expect(backend.callsOf('provision')).toEqual([]);
    await service.create('sparse', { size: '300M' }, silentLog);
  });

  it('keeps the room promised to sparse volumes from a preallocated one, and says how much is left', async () => {
    host = hostOf(256, 250);
    const { service } = await fresh({ overcommit: 2 });
    await service.create('promise', { size: '180M' }, silentLog);
    await expect(service.create('thick', { size: '100M', sparse: 'false' }, silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot create volume thick: a preallocated 100M does not fit in the 70M left on the data root's filesystem \(250M free, less 180M promised to sparse volumes and work under way\): free space there, or ask for a sparse volume$/,
      ),
    );
    // What is left outside the promise is still given.
    await service.create('thin', { size: '16M', sparse: 'false' }, silentLog);
  });

  it('counts a Create under way against the next one until it is done', async () => {
    const { service, backend } = await fresh({ overcommit: 2 });
    const open = backend.hold('provision');
    const first = service.create('first', { size: '150M', sparse: 'false' }, silentLog);
    await vi.waitFor(() => expect(backend.callsOf('provision')).toHaveLength(1));
    await expect(
      service.create('second', { size: '150M', sparse: 'false' }, silentLog),
    ).rejects.toMatchObject(
      refusal(
        /^cannot create volume second: a preallocated 150M does not fit in the 106M left .* less 150M promised/,
      ),
    );
    open();
    await first;
    expect((await service.list()).map((v) => v.Name)).toEqual(['first']);
  });

  it('asks the space rule for a resize: the growth only', async () => {
    const { service, backend } = await fresh({ overcommit: 1 });
    await service.create('a', { size: '100M' }, silentLog);
    await service.create('b', { size: '100M' }, silentLog);
    await expect(service.resize('a', '200M', silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot resize volume a to 200M: 100M more would bring the volumes on the data root's filesystem to 300M, over the 256M allowed/,
      ),
    );
    expect(backend.callsOf('grow')).toEqual([]);
    await service.resize('a', '120M', silentLog);
    expect((await service.get('a')).Status).toMatchObject({ size: 120 * MiB, hostProvisioned: 220 * MiB });
    // Repeating a completed resize asks for nothing.
    await service.resize('a', '120M', silentLog);
  });

  it("admits a clone at its source's size, before copying anything", async () => {
    const { service, store } = await fresh({
      overcommit: 1,
      clones: {
        sourceOf: () => {
          throw new Error('the copy must not start');
        },
        sizeOf: async () => 200 * MiB,
      },
    });
    await service.create('big', { size: '100M' }, silentLog);
    await expect(service.create('copy', { from: 'big' }, silentLog)).rejects.toMatchObject(
      refusal(/^cannot create volume copy: 200M more would bring the volumes/),
    );
    expect(await readdir(store.layout.staging)).toEqual([]);
  });

  it('warns once when the filesystem passes 90% used, and again only after it fell below', async () => {
    const logs = captureLog();
    const { service } = await fresh({ overcommit: 10, log: logs.log });
    const warnings = () => logs.lines().filter((l) => String(l.msg).includes('over 90% used'));
    host = hostOf(256, 20);
    await service.create('one', { size: '16M' }, silentLog);
    await service.create('two', { size: '16M' }, silentLog);
    expect(warnings()).toHaveLength(1);
    host = hostOf(256, 200);
    await service.create('three', { size: '16M' }, silentLog);
    host = hostOf(256, 10);
    await service.create('four', { size: '16M' }, silentLog);
    expect(warnings()).toHaveLength(2);
  });

  it('warns in Status when the sparse volumes could outgrow the free space', async () => {
    host = hostOf(1024, 100);
    const { service } = await fresh({ overcommit: 1 });
    await service.create('small', { size: '64M' }, silentLog);
    expect((await service.get('small')).Status).not.toHaveProperty('warning');
    await service.create('over', { size: '200M' }, silentLog);
    expect((await service.get('over')).Status.warning).toMatch(
      /^host filesystem has 100M free but the sparse volumes on it may still grow by 264M: free space/,
    );
  });
});

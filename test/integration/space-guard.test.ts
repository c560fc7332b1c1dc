import { randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskBackend } from '../../src/backend/disk.js';
import { LoopBackend } from '../../src/backend/loop.js';
import { type CloneProvider, lateClones } from '../../src/core/clone.js';
import { Snapshots } from '../../src/snapshot/snapshots.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import type { Maintained } from '../../src/volume/port.js';
import { VolumeService } from '../../src/volume/service.js';
import { captureLog, silentLog } from '../helpers/int-log.js';
import { MiB, TEST_DEFAULTS, testKernelOps } from '../helpers/int-service.js';
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

  /** A service over `root`, and its snapshot room, which also makes its clones (as the daemon wires it). */
  function open(root: string, overcommit: number, log = silentLog, clones?: CloneProvider<Maintained>) {
    const store = new Store(new Layout(root));
    // The service and its snapshot room need each other: the service asks for it at each clone.
    let snapshots: Snapshots | undefined;
    const service = new VolumeService({
      store,
      backends: { loop: new LoopBackend(testKernelOps), disk: new DiskBackend([], testKernelOps) },
      defaults: TEST_DEFAULTS,
      log,
      overcommit,
      clones: clones ?? lateClones(() => snapshots as Snapshots),
    });
    snapshots = new Snapshots(store, service, { maxFreezeMs: 60_000, copyBytesPerSecond: 400 * MiB });
    return { service, snapshots };
  }

  /** Writes `mib` MiB of incompressible data into a volume, through a real mount. */
  async function fill(service: VolumeService, name: string, mib: number): Promise<void> {
    const mountPoint = await service.mount(name, 'filler', silentLog);
    await writeFile(join(mountPoint, 'data'), randomBytes(mib * MiB));
    await service.unmount(name, 'filler', silentLog);
  }

  const refusal = (message: RegExp) => ({ kind: 'no-space', message: expect.stringMatching(message) });

  it("admits a clone at its source's size, before copying anything", async () => {
    const root = join(host, 'clone');
    const { service } = open(root, 1, silentLog, {
      sourceOf: () => {
        throw new Error('the copy must not start');
      },
      sizeOf: async () => 200 * 1024 * 1024,
    });
    await service.create('big', { size: '100M' }, silentLog);
    await expect(service.create('copy', { from: 'big' }, silentLog)).rejects.toMatchObject({
      kind: 'no-space',
      message: expect.stringMatching(/^cannot create volume copy: 200M more would bring the volumes/),
    });
    expect(await readdir(join(root, 'staging'))).toEqual([]);
    await service.remove('big', silentLog);
    await service.idle();
  });

  it('holds sparse volumes to overcommit x the filesystem, and says why with the numbers', async () => {
    const root = join(host, 'ratio');
    const { service } = open(root, 1);
    await service.create('a', { size: '100M' }, silentLog);
    await service.create('b', { size: '100M' }, silentLog);
    await expect(service.create('c', { size: '100M' }, silentLog)).rejects.toMatchObject({
      kind: 'no-space',
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
    const { service: generous } = open(root, 3);
    await generous.create('d', { size: '300M' }, silentLog);
    for (const name of ['a', 'c', 'd']) await generous.remove(name, silentLog);
    await generous.idle();
  });

  it('refuses a preallocated volume larger than the free space, and warns once the filesystem is 90% used', async () => {
    const root = join(host, 'full');
    const captured = captureLog();
    // Room in the ratio for the small volumes: what fills the filesystem here is the preallocated one.
    const { service } = open(root, 1.2, captured.log);
    await expect(service.create('huge', { size: '300M', sparse: 'false' }, silentLog)).rejects.toMatchObject({
      kind: 'no-space',
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

  it('keeps the room promised to sparse volumes from a preallocated one, and says how much is left', async () => {
    const root = join(host, 'promised');
    // A ratio that admits the sizes: what refuses here is the room the sparse volume was promised.
    const { service } = open(root, 2);
    await service.create('promise', { size: '180M' }, silentLog);
    await expect(service.create('thick', { size: '100M', sparse: 'false' }, silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot create volume thick: a preallocated 100M does not fit in the \d+(\.\d+)?M left on the data root's filesystem \(\d+(\.\d+)?M free, less 1\d\d(\.\d+)?M promised to sparse volumes and work under way\): free space there, or ask for a sparse volume$/,
      ),
    );
    expect(await readdir(join(root, 'staging'))).toEqual([]);
    // What is left outside the promise is still given.
    await service.create('thin', { size: '16M', sparse: 'false' }, silentLog);
    for (const name of ['promise', 'thin']) await service.remove(name, silentLog);
    await service.idle();
  });

  it('asks the space rule for a resize: the growth of a sparse or a preallocated volume', async () => {
    const root = join(host, 'resize');
    const { service } = open(root, 1);
    await service.create('a', { size: '100M' }, silentLog);
    await service.create('b', { size: '100M' }, silentLog);
    await expect(service.resize('a', '200M', silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot resize volume a to 200M: 100M more would bring the volumes on the data root's filesystem to 300M, over the .* allowed \(--overcommit 1 × .*\): remove volumes or snapshots/,
      ),
    );
    expect((await service.get('a')).Status).toMatchObject({ size: 100 * MiB, hostProvisioned: 200 * MiB });
    await service.resize('a', '120M', silentLog);
    expect((await service.get('a')).Status).toMatchObject({ size: 120 * MiB, hostProvisioned: 220 * MiB });
    await service.remove('b', silentLog);

    // A preallocated volume grows into written blocks: not into the room promised to sparse 'a'.
    const { service: generous } = open(root, 3);
    await generous.create('thick', { size: '32M', sparse: 'false' }, silentLog);
    await expect(generous.resize('thick', '150M', silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot resize volume thick to 150M: growing a preallocated volume by 118M does not fit in the .* left/,
      ),
    );
    await generous.resize('thick', '40M', silentLog);
    for (const name of ['a', 'thick']) await generous.remove(name, silentLog);
    await generous.idle();
  });

  it('admits a snapshot at what its copy takes, and a clone at its size, against the same ledger', async () => {
    // 60M written into 'data' and 100M promised to 'other': the copy would take promised room.
    const root = join(host, 'copies');
    const { service, snapshots } = open(root, 1);
    await service.create('data', { size: '100M' }, silentLog);
    await fill(service, 'data', 60);
    await service.create('other', { size: '100M' }, silentLog);
    await expect(snapshots.create('data', 'one', false, silentLog)).rejects.toMatchObject(
      refusal(
        /^cannot snapshot volume data: a copy of 6\d(\.\d+)?M does not fit in the \d+(\.\d+)?M left on the data root's filesystem \(\d+(\.\d+)?M free, less \d+(\.\d+)?M promised to sparse volumes and work under way\): free space there$/,
      ),
    );
    expect(await readdir(join(root, 'volumes', 'data', 'snapshots')).catch(() => [])).toEqual([]);
    await service.remove('other', silentLog);
    const snap = await snapshots.create('data', 'one', false, silentLog);
    expect((await service.get('data')).Status).toMatchObject({
      hostProvisioned: 100 * MiB + snap.allocatedBytes,
    });
    await expect(service.create('copy', { from: 'data' }, silentLog)).rejects.toMatchObject(
      refusal(/^cannot create volume copy: 100M more would bring the volumes/),
    );

    // Past the ratio's say (overcommit 3), a preallocated clone still may not take the room
    // promised to sparse volumes; a sparse one is a promise like them.
    const { service: generous } = open(root, 3);
    await generous.create('promise', { size: '200M' }, silentLog);
    await expect(
      generous.create('thick', { from: 'data@one', sparse: 'false' }, silentLog),
    ).rejects.toMatchObject(
      refusal(
        /^cannot create volume thick: a preallocated 100M does not fit in the .* left on the data root's filesystem/,
      ),
    );
    await generous.create('copy', { from: 'data@one' }, silentLog);
    for (const name of ['copy', 'promise']) await generous.remove(name, silentLog);
    await snapshots.remove('data', 'one', silentLog);
    await service.remove('data', silentLog);
    await service.idle();
    await generous.idle();
  });
});

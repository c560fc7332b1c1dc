import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { DiskBackend } from '../../src/backend/disk.js';
import { LoopBackend } from '../../src/backend/loop.js';
import { SparePool } from '../../src/backend/spares.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import { VolumeService } from '../../src/volume/service.js';
import { silentLog } from '../helpers/int-log.js';
import { MiB, serviceCases, TEST_DEFAULTS, testKernelOps, testLibc } from '../helpers/int-service.js';
import { storageAvailable } from '../helpers/tools.js';

const uuidOf = async (image: string) =>
  (await execa('blkid', ['-p', '-o', 'value', '-s', 'UUID', '--', image])).stdout.trim();

/** Sparse images formatted ahead of time, so a Create of a size seen before skips mkfs. */
describe.runIf(storageAvailable())('spare images on the real kernel', () => {
  const fresh = serviceCases('int-spares');

  function withSpares(root: string, depth: number, defaults = TEST_DEFAULTS) {
    const layout = new Layout(root);
    const spares = new SparePool(layout.spares, depth, defaults, silentLog, testLibc);
    const service = new VolumeService({
      store: new Store(layout),
      backends: {
        loop: new LoopBackend(testKernelOps, { spares }),
        disk: new DiskBackend([], testKernelOps),
      },
      defaults,
      log: silentLog,
    });
    return { layout, service };
  }

  const sparesIn = async (layout: Layout) => (await readdir(layout.spares)).filter((f) => f.endsWith('.img'));

  it('warms the default size at start, hands a spare to Create, and refills it once Creates pause', async () => {
    const { root } = await fresh();
    // A restart finds leftovers of the previous run: a half-formatted temp file and an old spare.
    await mkdir(join(root, 'spares'), { recursive: true, mode: 0o700 });
    await writeFile(join(root, 'spares', '.tmp-0123456789ab'), 'half');
    await writeFile(join(root, 'spares', 'ext4-67108864-old.img'), 'from an older loopvol');
    const { layout, service } = withSpares(root, 2);
    await service.start();
    await expect.poll(() => sparesIn(layout), { timeout: 10_000 }).toHaveLength(2);
    expect(await readdir(layout.spares)).toEqual(
      expect.not.arrayContaining(['.tmp-0123456789ab', 'ext4-67108864-old.img']),
    );

    await service.create('a', { size: '64M' }, silentLog);
    await service.create('b', {}, silentLog);
    expect(await sparesIn(layout)).toEqual([]);
    // Each spare was formatted on its own: every volume has its own filesystem UUID.
    const [a, b] = await Promise.all([uuidOf(layout.volume('a').image), uuidOf(layout.volume('b').image)]);
    expect(a).toMatch(/^[0-9a-f-]{36}$/);
    expect(a).not.toBe(b);

    // A spare's root is ready for the default owner and mode: the first Mount prepares nothing.
    const recordOf = async (name: string) => JSON.parse(await readFile(layout.volume(name).meta, 'utf8'));
    expect((await recordOf('a')).initialized).toBe(true);
    const mountPoint = await service.mount('a', 'x', silentLog);
    expect(await readdir(mountPoint)).toEqual([]);
    expect(await stat(mountPoint)).toMatchObject({ uid: 0, gid: 0, mode: 0o40755 });
    await writeFile(join(mountPoint, 'data'), 'kept');
    expect((await service.get('a')).Status).toMatchObject({ mounted: true, size: 64 * MiB, fs: 'ext4' });
    await service.unmount('a', 'x', silentLog);

    await expect.poll(() => sparesIn(layout), { timeout: 10_000 }).toHaveLength(2);
    // Another owner: taken from a spare too, and prepared at its first Mount as usual.
    await service.create('owned', { uid: '1000', gid: '1000', mode: '0750' }, silentLog);
    expect((await recordOf('owned')).initialized).toBe(false);
    const owned = await service.mount('owned', 'x', silentLog);
    expect(await readdir(owned)).toEqual([]);
    expect(await stat(owned)).toMatchObject({ uid: 1000, gid: 1000, mode: 0o40750 });
    await service.unmount('owned', 'x', silentLog);
    await service.remove('owned', silentLog);
    await service.idle();
    await service.remove('a', silentLog);
    await service.remove('b', silentLog);
    await service.idle();
  });

  it('writes images from the ext4 template when a burst empties the spares: each its own, each sound', async () => {
    const { root } = await fresh();
    // 1G: eight block groups, so four backup superblocks that must carry the new identity too.
    const { layout, service } = withSpares(root, 1, { fs: 'ext4', sizeBytes: 1024 * MiB });
    await service.start();
    const templates = async () => (await readdir(layout.spares)).filter((f) => f.endsWith('.template'));
    await expect.poll(templates, { timeout: 10_000 }).toHaveLength(1);
    await expect.poll(() => sparesIn(layout), { timeout: 10_000 }).toHaveLength(1);
    const template = join(layout.spares, (await templates())[0] as string);

    // Three at once: one takes the spare, two are written from the template (no lull to refill in).
    const names = ['b1', 'b2', 'b3'];
    await Promise.all(names.map((n) => service.create(n, {}, silentLog)));
    const uuids = await Promise.all(names.map((n) => uuidOf(layout.volume(n).image)));
    expect(new Set([...uuids, await uuidOf(template)]).size).toBe(4);
    for (const [i, name] of names.entries()) {
      const image = layout.volume(name).image;
      const check = await execa('e2fsck', ['-fn', image], { reject: false });
      expect(check.exitCode, check.stdout).toBe(0);
      // Every backup superblock has the volume's UUID, as tune2fs -U would leave it.
      const backup = await execa(
        'dumpe2fs',
        ['-o', 'superblock=32768', '-o', 'blocksize=4096', '-h', image],
        {
          stderr: 'ignore',
        },
      );
      expect(backup.stdout).toContain(uuids[i]);
      expect((await stat(image)).size).toBe(1024 * MiB);
    }
    // Sparse as mkfs left it, and ready for the default owner: nothing to prepare at the first Mount.
    expect((await stat(layout.volume('b2').image)).blocks * 512).toBeLessThan(4 * MiB);
    const mountPoint = await service.mount('b2', 'x', silentLog);
    expect(await readdir(mountPoint)).toEqual([]);
    await writeFile(join(mountPoint, 'data'), 'kept');
    await service.unmount('b2', 'x', silentLog);
    await service.mount('b2', 'x', silentLog);
    expect(await readFile(join(mountPoint, 'data'), 'utf8')).toBe('kept');
    await service.unmount('b2', 'x', silentLog);
    for (const name of names) await service.remove(name, silentLog);
    await service.idle();
  });

  it('formats in place when no spare fits (another size, xfs, preallocated) and with the pool off', async () => {
    const { root } = await fresh();
    const { layout, service } = withSpares(root, 1);
    await service.start();
    await expect.poll(() => sparesIn(layout), { timeout: 10_000 }).toHaveLength(1);
    await service.create('other-size', { size: '80M' }, silentLog);
    await service.create('thick', { size: '64M', sparse: 'false' }, silentLog);
    expect(await sparesIn(layout)).toHaveLength(1);
    for (const name of ['other-size', 'thick']) {
      await service.mount(name, 'x', silentLog);
      await service.unmount(name, 'x', silentLog);
      await service.remove(name, silentLog);
    }
    await service.idle();

    const off = withSpares(join(root, 'off'), 0);
    await off.service.start();
    await off.service.create('plain', {}, silentLog);
    await expect(readdir(off.layout.spares)).rejects.toMatchObject({ code: 'ENOENT' });
    await off.service.remove('plain', silentLog);
    await off.service.idle();
  });
});

import { lstat, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Layout } from '../../src/state/layout.js';
import { mountAt } from '../../src/system/mountinfo.js';
import { silentLog } from '../helpers/int-log.js';
import { openService, serviceCases } from '../helpers/int-service.js';
import { storageAvailable } from '../helpers/tools.js';

const A = 'a'.repeat(64);

/** --mount-root: volumes mount at <mountRoot>/<name> (a managed plugin's propagated mount). */
describe.runIf(storageAvailable())('a mount root apart from the data root', () => {
  const fresh = serviceCases('int-mount-root');

  async function withMountRoot() {
    const c = await fresh();
    const mountRoot = join(c.dir, 'propagated');
    return { ...c, mountRoot, service: openService(c.root, silentLog, undefined, [], mountRoot) };
  }

  it('mounts there, keeps the data with the image, and removes the mountpoint with the volume', async () => {
    const { service, root, mountRoot } = await withMountRoot();
    await service.create('pg', {}, silentLog);
    // Nothing under the mount root until the first Mount.
    expect(await readdir(mountRoot)).toEqual([]);
    const mountPoint = await service.mount('pg', A, silentLog);
    expect(mountPoint).toBe(join(mountRoot, 'pg'));
    expect((await mountAt(mountPoint))?.fsType).toBe('ext4');
    expect((await service.get('pg')).Mountpoint).toBe(mountPoint);
    expect(await service.list()).toEqual([{ Name: 'pg', Mountpoint: mountPoint }]);
    await writeFile(join(mountPoint, 'kept'), 'data');
    await service.unmount('pg', A, silentLog);
    expect(await mountAt(mountPoint)).toBeUndefined();
    expect(await readdir(join(root, 'volumes', 'pg'))).not.toContain('mnt');

    await service.mount('pg', A, silentLog);
    expect(await readFile(join(mountPoint, 'kept'), 'utf8')).toBe('data');
    await service.unmount('pg', A, silentLog);
    await service.remove('pg', silentLog);
    expect(await readdir(mountRoot)).toEqual([]);
    expect(await readdir(join(root, 'volumes'))).toEqual([]);
  });

  it('sweeps empty mountpoints a crash left without a volume, and keeps anything else', async () => {
    const { service, root, mountRoot } = await withMountRoot();
    await service.create('live', {}, silentLog);
    await service.list();
    await mkdir(join(mountRoot, 'orphan'));
    await mkdir(join(mountRoot, 'foreign'));
    await writeFile(join(mountRoot, 'foreign', 'note'), 'not ours');
    await writeFile(join(mountRoot, 'file'), 'not ours');
    await mkdir(join(mountRoot, 'live'));

    const restarted = openService(root, silentLog, undefined, [], mountRoot);
    await restarted.list();
    expect((await readdir(mountRoot)).sort()).toEqual(['file', 'foreign', 'live']);
    await restarted.remove('live', silentLog);
  });

  it('refuses a symlink planted at the mountpoint and mounts nothing at its target', async () => {
    const { service, dir, mountRoot } = await withMountRoot();
    await service.create('planted', {}, silentLog);
    const target = join(dir, 'elsewhere');
    await mkdir(target);
    await symlink(target, join(mountRoot, 'planted'));
    await expect(service.mount('planted', A, silentLog)).rejects.toThrow('is not a plain directory');
    expect(await mountAt(target)).toBeUndefined();
    expect((await lstat(join(mountRoot, 'planted'))).isSymbolicLink()).toBe(true);
    await service.remove('planted', silentLog);
  });

  it('creates the mount root private to root', async () => {
    const { service, mountRoot } = await withMountRoot();
    await service.list();
    expect((await lstat(mountRoot)).mode & 0o777).toBe(0o700);
    expect(new Layout('/d', mountRoot).volume('x').mountPoint).toBe(join(mountRoot, 'x'));
  });
});

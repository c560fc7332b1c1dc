import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mountAt } from '../../src/system/mountinfo.js';
import { silentLog } from '../helpers/int-log.js';
import { serviceCases } from '../helpers/int-service.js';
import { storageAvailable } from '../helpers/tools.js';

/** The per-mount options of the mount at `path`, as /proc/self/mountinfo shows them. */
async function perMountOptions(path: string): Promise<string[]> {
  const line = (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .find((l) => l.split(' ')[4] === path);
  return line?.split(' ')[5]?.split(',') ?? [];
}

/** -o mountopts=...: allowlisted options reach the kernel; nosuid and nodev are always there. */
describe.runIf(storageAvailable())('mount options on the real kernel', () => {
  const fresh = serviceCases('int-mountopts');

  it('mounts ext4 with the options asked for, beside nosuid and nodev', async () => {
    const { service } = await fresh();
    await service.create('tuned', { size: '64M', mountopts: 'noatime,lazytime,data=journal' }, silentLog);
    const mountPoint = await service.mount('tuned', 'x', silentLog);
    expect(await perMountOptions(mountPoint)).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noatime']));
    expect((await mountAt(mountPoint))?.superOptions).toEqual(
      expect.arrayContaining(['lazytime', 'data=journal']),
    );
    expect((await service.get('tuned')).Status).toMatchObject({
      mountOptions: 'noatime,lazytime,data=journal',
    });
    await writeFile(join(mountPoint, 'f'), 'journalled');
    await service.unmount('tuned', 'x', silentLog);
    await service.remove('tuned', silentLog);
  });

  it('mounts a read-only volume read-only, and still nosuid and nodev', async () => {
    const { service } = await fresh();
    await service.create('frozen', { size: '64M', mountopts: 'ro' }, silentLog);
    const mountPoint = await service.mount('frozen', 'x', silentLog);
    expect(await perMountOptions(mountPoint)).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev']));
    await expect(writeFile(join(mountPoint, 'f'), 'no')).rejects.toMatchObject({ code: 'EROFS' });
    await service.unmount('frozen', 'x', silentLog);
    await service.remove('frozen', silentLog);
  });

  it('gives a volume without mountopts only nosuid and nodev (and relatime, the kernel default)', async () => {
    const { service } = await fresh();
    await service.create('plain', { size: '64M' }, silentLog);
    const mountPoint = await service.mount('plain', 'x', silentLog);
    const options = await perMountOptions(mountPoint);
    expect(options).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));
    expect(options).not.toContain('noatime');
    await service.unmount('plain', 'x', silentLog);
    await service.remove('plain', silentLog);
  });

  it('refuses an option outside the allowlist, creating nothing', async () => {
    const { service } = await fresh();
    await expect(service.create('bad', { mountopts: 'exec,suid' }, silentLog)).rejects.toMatchObject({
      kind: 'invalid',
      message: expect.stringContaining('"exec", "suid" is not allowed'),
    });
    expect(await service.list()).toEqual([]);
  });
});

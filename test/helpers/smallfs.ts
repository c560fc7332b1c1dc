import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { attachLoop } from '../../src/system/losetup.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountDevice } from '../../src/system/mount.js';

/**
 * A small ext4 filesystem of `mib` MiB mounted at <dir>/<name>, to run a data root on a disk that
 * can really fill up. cleanupTempDir(dir) unmounts and detaches it.
 */
export async function smallFilesystem(dir: string, name: string, mib: number): Promise<string> {
  const image = join(dir, `${name}.img`);
  const handle = await open(image, 'wx');
  await handle.truncate(mib * 1024 * 1024);
  await handle.close();
  await makeFilesystem(image, 'ext4', 'sparse-image');
  const mountPoint = join(dir, name);
  await mkdir(mountPoint);
  await mountDevice(await attachLoop(image, { directIo: true }), mountPoint, 'ext4', []);
  return mountPoint;
}

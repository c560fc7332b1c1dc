import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BY_ID_DIR } from '../../src/system/disk-id.js';
import { attachLoop } from '../../src/system/losetup.js';

/** A blank stand-in disk: a loop device over a new image `dir/<name>.img`. */
export async function standInDisk(dir: string, name: string, size: number): Promise<string> {
  const image = join(dir, `${name}.img`);
  const handle = await open(image, 'wx');
  await handle.truncate(size);
  await handle.close();
  return attachLoop(image, { directIo: true });
}

/**
 * Links under /dev/disk/by-id as udev makes them for real disks (it does not run here, nor for
 * loop devices): each name unique to this test run, so parallel runs cannot meet, and removeAll
 * deletes only the links this instance made.
 */
export class StableNames {
  private readonly made = new Set<string>();
  private readonly prefix = `loopvol-test-${randomBytes(4).toString('hex')}`;

  /** Makes (or re-points) the link `<prefix>-<label>` to `device`; returns its path. */
  async link(label: string, device: string): Promise<string> {
    await mkdir(BY_ID_DIR, { recursive: true });
    const path = join(BY_ID_DIR, `${this.prefix}-${label}`);
    this.made.add(path);
    await rm(path, { force: true });
    await symlink(device, path);
    return path;
  }

  async removeAll(): Promise<void> {
    for (const path of this.made) await rm(path, { force: true });
    this.made.clear();
  }
}

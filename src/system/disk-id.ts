import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Where udev publishes names that follow the disk (serial number, WWN) rather than the order the
 * kernel found the disks in: /dev/sdb and /dev/sdc can swap at a reboot, these links cannot.
 */
export const BY_ID_DIR = '/dev/disk/by-id';

export const isStableName = (path: string): boolean => path.startsWith(`${BY_ID_DIR}/`);

/** The device node `path` leads to now (following the links), or undefined when it leads nowhere. */
export async function deviceBehind(path: string): Promise<string | undefined> {
  return realpath(path).catch(() => undefined);
}

/**
 * A stable name of `device` under /dev/disk/by-id, or undefined when it has none. A disk has
 * several (serial, WWN); the first in sorted order is taken, so the answer does not vary.
 */
export async function stableNameOf(device: string): Promise<string | undefined> {
  const target = await deviceBehind(device);
  if (!target) return undefined;
  const names = await readdir(BY_ID_DIR).catch(() => [] as string[]);
  for (const name of names.sort()) {
    const link = join(BY_ID_DIR, name);
    if ((await deviceBehind(link)) === target) return link;
  }
  return undefined;
}

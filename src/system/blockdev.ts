import { readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';

/** Size of a block device in bytes, from sysfs (512-byte sectors whatever the device's block size). */
export async function blockDeviceSize(device: string): Promise<number> {
  const name = basename(await realpath(device));
  return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
}

/** True when `path` resolves to a block device node. */
export async function isBlockDevice(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isBlockDevice();
  } catch {
    return false;
  }
}

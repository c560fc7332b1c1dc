import type { Logger } from 'pino';
import { BY_ID_DIR, deviceBehind, isStableName, stableNameOf } from '../system/disk-id.js';

/**
 * The pool as stable names: a kernel name (/dev/sdb) can name another disk after a reboot, so each
 * is replaced by its /dev/disk/by-id name with a warning, and refused when it has none. Two
 * entries that lead to one disk are refused too: it would be handed out twice.
 */
export async function resolvePool(entries: readonly string[], log?: Logger): Promise<string[]> {
  const pool: string[] = [];
  const seen = new Map<string, string>();
  for (const entry of entries) {
    let disk = entry;
    if (!isStableName(entry)) {
      if (!(await deviceBehind(entry))) {
        throw new Error(
          `--disk-pool ${entry} does not exist: name each pool disk by its ${BY_ID_DIR}/ link (ls -l ${BY_ID_DIR})`,
        );
      }
      const stable = await stableNameOf(entry);
      if (!stable) {
        throw new Error(
          `--disk-pool ${entry} has no stable name under ${BY_ID_DIR}: a kernel name such as /dev/sdb can lead to another disk after a reboot, so pool disks are named by their ${BY_ID_DIR}/ link (ls -l ${BY_ID_DIR} lists them; a disk without one needs a udev rule that makes it)`,
        );
      }
      log?.warn(
        { entry, disk: stable },
        `--disk-pool ${entry} is a kernel name, which can lead to another disk after a reboot: using ${stable} instead; name it so in --disk-pool`,
      );
      disk = stable;
    }
    const device = (await deviceBehind(disk)) ?? disk;
    const twice = seen.get(device);
    if (twice !== undefined)
      throw new Error(`--disk-pool names disk ${device} twice (${twice} and ${entry})`);
    seen.set(device, entry);
    pool.push(disk);
  }
  return pool;
}

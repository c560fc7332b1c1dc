import { lstatSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Whether something is mounted at `path`, from two lstat calls instead of a read of mountinfo
 * (whose size grows with every mount on the host): a mountpoint's device differs from its
 * parent's. A bind mount of a directory of the same filesystem would not show, but loopvol's
 * mountpoints only ever carry a volume's own filesystem.
 *
 * Synchronous, like the other per-request metadata calls (fsstat, the sysfs reads): they read
 * inodes and counters the kernel holds in memory and take microseconds, while a hop to the
 * thread pool and back took 10x as long and its wake-up latency put Path's p99 at 12x its p50.
 */
export function isMountPoint(path: string): boolean {
  const self = lstatSync(path, { throwIfNoEntry: false });
  const parent = lstatSync(dirname(path), { throwIfNoEntry: false });
  if (!self?.isDirectory() || !parent) return false;
  return self.dev !== parent.dev || self.ino === parent.ino;
}

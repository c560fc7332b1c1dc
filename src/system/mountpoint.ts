import { lstat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Whether something is mounted at `path`, from two lstat calls instead of a read of mountinfo
 * (whose size grows with every mount on the host): a mountpoint's device differs from its
 * parent's. A bind mount of a directory of the same filesystem would not show, but loopvol's
 * mountpoints only ever carry a volume's own filesystem.
 */
export async function isMountPoint(path: string): Promise<boolean> {
  const [self, parent] = await Promise.all([
    lstat(path).catch(() => undefined),
    lstat(dirname(path)).catch(() => undefined),
  ]);
  if (!self?.isDirectory() || !parent) return false;
  return self.dev !== parent.dev || self.ino === parent.ino;
}

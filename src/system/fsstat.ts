import { stat, statfs } from 'node:fs/promises';

/** Space inside a mounted filesystem, as `df` would show it for an unprivileged user. */
export async function filesystemUsage(mountPoint: string): Promise<{ usedBytes: number; freeBytes: number }> {
  const s = await statfs(mountPoint);
  return { usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** Bytes a (possibly sparse) file really occupies on the host. */
export async function allocatedBytes(path: string): Promise<number> {
  return (await stat(path)).blocks * 512;
}

import { stat, statfs } from 'node:fs/promises';

/** Space inside a mounted filesystem, as `df` would show it for an unprivileged user. */
export async function filesystemUsage(mountPoint: string): Promise<{ usedBytes: number; freeBytes: number }> {
  const s = await statfs(mountPoint);
  return { usedBytes: (s.blocks - s.bfree) * s.bsize, freeBytes: s.bavail * s.bsize };
}

/** A (possibly sparse) file's apparent size and the bytes it really occupies on the host. */
export interface FileSpace {
  sizeBytes: number;
  allocatedBytes: number;
}

/** A file's space, from one stat. */
export async function fileSpace(path: string): Promise<FileSpace> {
  const s = await stat(path);
  return { sizeBytes: s.size, allocatedBytes: s.blocks * 512 };
}

import { statfsSync, statSync } from 'node:fs';

// Synchronous: in-memory counters and inodes, microseconds (see isMountPoint).

/** Space of a mounted filesystem, as `df` would show it for an unprivileged user. */
export function filesystemUsage(mountPoint: string): {
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
} {
  const s = statfsSync(mountPoint);
  return {
    totalBytes: s.blocks * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    freeBytes: s.bavail * s.bsize,
  };
}

/** A (possibly sparse) file's apparent size and the bytes it really occupies on the host. */
export interface FileSpace {
  sizeBytes: number;
  allocatedBytes: number;
}

/** A file's space, from one stat. */
export function fileSpace(path: string): FileSpace {
  const s = statSync(path);
  return { sizeBytes: s.size, allocatedBytes: s.blocks * 512 };
}

import { z } from 'zod';
import { writeFileAtomic } from './atomic.js';
import type { VolumePaths } from './layout.js';

/**
 * A disk volume's hold on its disk, kept in disk-claim.json beside volume.json as well as in the
 * record. Written once (at Create, or when an old record is upgraded) and never rewritten, so a
 * volume whose volume.json is damaged still keeps its disk from the next Create.
 */
export interface DiskClaim {
  /** The disk's stable name, under /dev/disk/by-id. */
  disk: string;
  /** The UUID of the filesystem made on it (or found on it) at Create. */
  fsUuid: string;
}

export const FS_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const claimSchema = z.object({ disk: z.string().startsWith('/dev/'), fsUuid: z.string().regex(FS_UUID) });

export function parseDiskClaim(text: string): DiskClaim {
  return claimSchema.parse(JSON.parse(text));
}

export async function saveDiskClaim(paths: VolumePaths, claim: DiskClaim): Promise<void> {
  await writeFileAtomic(paths.claim, `${JSON.stringify({ disk: claim.disk, fsUuid: claim.fsUuid })}\n`);
}

import { link, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { VolumeEncryption } from '../core/options.js';
import { encryptionSchema } from '../state/record.js';
import { type BackupSummary, backupDirectory, type ResticRepo } from '../system/restic.js';
import type { Backing } from './file-backup.js';

/** Tags an image backup of an encrypted volume carries: the key's UUID and identifier, never the key. */
export const encryptionTags = (encryption: VolumeEncryption) => [
  `key=${encryption.keyUuid}`,
  `keyid=${encryption.keyId}`,
];

/** The encryption an image backup's tags record; undefined for a plain volume's backup. */
export function encryptionOfTags(tags: readonly string[] | undefined): VolumeEncryption | undefined {
  const value = (key: string) => tags?.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);
  const parsed = encryptionSchema.safeParse({ keyUuid: value('key'), keyId: value('keyid') });
  return parsed.success ? parsed.data : undefined;
}

/**
 * Backs up a consistent copy of an encrypted volume as its whole image, `/<volume>.img` in the
 * snapshot (the format restores of image backups read): its files stay encrypted in the
 * repository, where a file-level backup would have read them in plain text. The copy is linked
 * under that name inside its own staging directory, which goes with it.
 */
export async function backupImage(
  repo: ResticRepo,
  image: string,
  volume: string,
  backing: Backing,
): Promise<BackupSummary> {
  const dir = join(dirname(image), 'image-backup');
  await mkdir(dir, { mode: 0o700 });
  try {
    const named = join(dir, `${volume}.img`);
    await link(image, named);
    return await backupDirectory(repo, named, backing.tags, backing.host);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

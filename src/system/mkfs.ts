import { existsSync } from 'node:fs';
import type { FsType } from '../core/fs-type.js';
import { run } from './exec.js';

/**
 * What is being formatted, which decides how mkfs treats the blocks underneath:
 * - `sparse-image`: discard and lazy inode-table init, so the image stays as thin as possible.
 * - `preallocated-image`: every block must stay allocated. mkfs must not discard (on a file that
 *   punches holes), and ext4's inode tables are zeroed now with fallocate's zero-range (fast, keeps
 *   the extents) rather than by the kernel's lazy-init thread after mount, whose zero-out reaches
 *   the image through the loop device as hole punches.
 * - `zeroed-image`: an image whose every block was written (prealloc=zero), and must stay so: as a
 *   preallocated image, but mkfs writes the zeros of the inode tables instead of asking fallocate's
 *   zero-range, which would turn those blocks back into unwritten extents (each one's first write
 *   then costs the host a journalled conversion).
 * - `device`: a whole disk. No discard and lazy init, so a Create request never waits for a
 *   full-disk discard or for zeroing gigabytes of inode tables.
 */
export type FormatTarget = 'sparse-image' | 'preallocated-image' | 'zeroed-image' | 'device';

/**
 * ext4 features added where this kernel has them (/sys/fs/ext4/features lists them), so every
 * volume formatted here also mounts here:
 * - fast_commit (5.10+): an fsync inside a volume writes one block to the journal instead of a full
 *   transaction, and each journal write costs twice through a loop device (the flush before it and
 *   the emulated FUA after it each become an fsync of the image): 4k writes with an fsync each went
 *   from 0.36x to about 0.5x of the host filesystem's speed.
 * - metadata_csum_seed (4.4+): metadata checksums are seeded from a stored value, not the UUID,
 *   so an image copied from a template gets its own UUID by rewriting its superblocks alone
 *   (see backend/spares.ts).
 */
export const ext4Features = (): string[] =>
  ['fast_commit', 'metadata_csum_seed'].filter((f) => existsSync(`/sys/fs/ext4/features/${f}`));

/**
 * Formats an image file or block device. On a file this runs before any loop device exists, so a
 * failed format leaves nothing attached. Reserved blocks are 0: the volume's size is what the
 * container may use, whatever its uid. Blocks (ext4) and sectors (xfs) are 4 KiB even on small
 * volumes: direct I/O on an image whose blocks a reflink snapshot shares needs 4 KiB alignment,
 * and the loop device can serve that only to a filesystem that writes no smaller units.
 */
export async function makeFilesystem(
  target: string,
  fsType: FsType,
  kind: FormatTarget,
  niceness?: number,
  /** More ext4 features: `encrypt` for a volume encrypted with fscrypt. */
  extraFeatures: readonly string[] = [],
): Promise<void> {
  const keepBlocks = kind !== 'sparse-image';
  const image = kind === 'preallocated-image' || kind === 'zeroed-image';
  if (fsType === 'ext4') {
    const ext = [`lazy_itable_init=${image ? 0 : 1}`, 'lazy_journal_init=1'];
    if (keepBlocks) ext.push('nodiscard');
    const features = [...ext4Features(), ...extraFeatures];
    const featureArgs = features.length > 0 ? ['-O', features.join(',')] : [];
    const args = ['-q', '-F', '-b', '4096', '-m', '0', ...featureArgs, '-E', ext.join(',')];
    // e2fsprogs' switch from fallocate's zero-range (or hole punching) to writing zeros.
    const env = kind === 'zeroed-image' ? { UNIX_IO_NOZEROOUT: '1' } : undefined;
    await run('mkfs.ext4', [...args, '--', target], { timeoutMs: 300_000, niceness, env });
  } else {
    const args = ['-q', '-f', '-s', 'size=4096'];
    if (keepBlocks) args.push('-K');
    await run('mkfs.xfs', [...args, '--', target], { timeoutMs: 300_000, niceness });
  }
}

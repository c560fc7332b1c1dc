import { EXT4_SUPERBLOCK, isExt4 } from './fs-head.js';

/** The superblock fields loopvol reads, as offsets into the filesystem's head. */
const STATE_AT = EXT4_SUPERBLOCK + 0x3a;
const INCOMPAT_AT = EXT4_SUPERBLOCK + 0x60;
/** s_state bits: cleanly unmounted, and errors detected by the kernel. */
const STATE_VALID = 0x1;
const STATE_ERROR = 0x2;
/** The journal holds transactions a mount or e2fsck must replay: the last user did not unmount. */
const INCOMPAT_RECOVER = 0x4;

/**
 * Why an unmounted ext4 filesystem needs a check before it is mounted, or undefined when it was
 * left cleanly (or is not ext4 at all: mount then says what it is). Reads only the head
 * (readFilesystemHead), so every fresh attach can afford it.
 */
export function ext4Unclean(head: Buffer): string | undefined {
  if (!isExt4(head)) return undefined;
  const state = head.readUInt16LE(STATE_AT);
  if (state & STATE_ERROR) return 'the kernel recorded filesystem errors';
  if (head.readUInt32LE(INCOMPAT_AT) & INCOMPAT_RECOVER)
    return 'it was not unmounted cleanly (journal needs recovery)';
  if (!(state & STATE_VALID)) return 'it was not unmounted cleanly';
  return undefined;
}

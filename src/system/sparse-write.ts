import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/** Zero runs this long stay holes. */
const BLOCK = 64 * 1024;
const ZERO = Buffer.alloc(BLOCK);

/**
 * Writes a stream into a new file, leaving every all-zero 64 KiB block a hole, so an image restored
 * from a backup occupies what its data does, not its size. Durable when it returns; returns the
 * file's size. A stream longer than `maxBytes` is refused before anything past it is written.
 */
export async function writeSparse(stream: Readable, dest: string, maxBytes: number): Promise<number> {
  const file = await open(dest, 'wx', 0o600);
  let offset = 0;
  let pending = Buffer.alloc(0);
  const flush = async (block: Buffer) => {
    if (!block.equals(block.length === BLOCK ? ZERO : Buffer.alloc(block.length))) {
      await file.write(block, 0, block.length, offset);
    }
    offset += block.length;
  };
  try {
    for await (const chunk of stream) {
      pending = Buffer.concat([pending, chunk as Buffer]);
      if (offset + pending.length > maxBytes) {
        throw new Error(`the image is larger than its recorded size, ${maxBytes} bytes: refused`);
      }
      let at = 0;
      for (; at + BLOCK <= pending.length; at += BLOCK) await flush(pending.subarray(at, at + BLOCK));
      pending = pending.subarray(at);
    }
    if (pending.length > 0) await flush(pending);
    await file.truncate(offset);
    await file.sync();
  } finally {
    await file.close();
  }
  return offset;
}

import { lstat, open, readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

/** Zero runs this long (and aligned) become holes; smaller files are left as they are. */
const BLOCK = 64 * 1024;
const ZERO = Buffer.alloc(BLOCK);
const READ_BYTES = 16 * BLOCK;

/** Whether `path` holds an aligned all-zero block worth a hole (read in large chunks, in-process). */
async function hasZeroBlock(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(READ_BYTES);
    for (let offset = 0; ; offset += READ_BYTES) {
      const { bytesRead } = await file.read(buffer, 0, READ_BYTES, offset);
      for (let at = 0; at + BLOCK <= bytesRead; at += BLOCK) {
        if (buffer.subarray(at, at + BLOCK).equals(ZERO)) return true;
      }
      if (bytesRead < READ_BYTES) return false;
    }
  } finally {
    await file.close();
  }
}

/**
 * Turns the zero runs of every regular file under `dir` (one filesystem, not crossing mounts) back
 * into holes: a restore writes what restic stored, and restic 0.14 stores a hole as zeros. A file
 * already as thin as its size allows is skipped unread; the others are read here first, and only
 * one with a zero block is handed to fallocate (which reads in small steps, about 5x slower). The
 * files' modification times are put back (punching a hole changes them).
 */
export async function digHolesUnder(dir: string): Promise<void> {
  const root = await lstat(dir);
  const walk = async (path: string): Promise<void> => {
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) {
        if ((await lstat(child)).dev === root.dev) await walk(child);
        continue;
      }
      if (!entry.isFile()) continue;
      const st = await lstat(child);
      if (st.size < BLOCK || st.blocks * 512 < st.size || !(await hasZeroBlock(child))) continue;
      await run('fallocate', ['--dig-holes', '--', child], { timeoutMs: 3_600_000 });
      await utimes(child, st.atime, st.mtime);
    }
  };
  await walk(dir);
}

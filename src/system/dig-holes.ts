import { lstat, readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './exec.js';

/** Files smaller than this keep what they have: a hole needs whole blocks, and a check costs a process. */
const MIN_BYTES = 64 * 1024;

/**
 * Turns the zero runs of every regular file under `dir` (one filesystem, not crossing mounts) back
 * into holes: a restore writes what restic stored, and restic 0.14 stores a hole as zeros. The
 * files' modification times are put back (punching a hole changes them); a file already as thin
 * as its size allows is skipped unread.
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
      if (st.size < MIN_BYTES || st.blocks * 512 < st.size) continue;
      await run('fallocate', ['--dig-holes', '--', child], { timeoutMs: 3_600_000 });
      await utimes(child, st.atime, st.mtime);
    }
  };
  await walk(dir);
}

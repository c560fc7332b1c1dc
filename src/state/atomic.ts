import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** fsyncs a directory so that a rename or unlink inside it survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  await syncFile(dir);
}

/** fsyncs a file or directory that is not open. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** How writeFileAtomic writes. */
export interface AtomicWriteOptions {
  mode?: number;
  /**
   * fsync the file and its directory so the new content survives a power cut (default). Without
   * it the rename is still atomic for a crash of the process (the page cache survives that);
   * only a power cut can lose the change.
   */
  durable?: boolean;
}

/** Writes a new file and fsyncs it; on failure nothing is left behind. */
export async function writeNewFile(path: string, data: string, mode: number, durable = true): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(data);
    if (durable) await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(path, { force: true });
    throw err;
  }
  await handle.close();
}

/**
 * Replaces `path` with `data` so that a crash at any instant leaves either the old or the new
 * content, never a mix: write a temp file beside it, fsync, rename over, fsync the directory.
 */
export async function writeFileAtomic(
  path: string,
  data: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const { mode = 0o600, durable = true } = options;
  const dir = dirname(path);
  const temp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
  await writeNewFile(temp, data, mode, durable);
  try {
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  if (durable) await syncDir(dir);
}
/** True for names writeFileAtomic leaves behind when killed mid-write; reconcile deletes them. */
export function isAtomicTemp(name: string): boolean {
  return name.startsWith('.tmp-');
}

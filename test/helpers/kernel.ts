import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listLoops } from '../../src/system/loop-sysfs.js';
import { detachLoop } from '../../src/system/losetup.js';
import { unmount } from '../../src/system/mount.js';
import { readMounts } from '../../src/system/mountinfo.js';

/** A private directory for one test file; everything it creates lives below it. */
export async function makeTempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `loopvol-${label}-`));
}

const below = (path: string, dir: string) => path === dir || path.startsWith(`${dir}/`);

/**
 * Mounts and loop devices this test made under `dir` (and only those). A loop device whose detach
 * the kernel deferred (autoclear, still held by a probe or a container's copy of the mount tree)
 * is going away, not leaked, unless it is still mounted here.
 */
export async function kernelStateUnder(dir: string): Promise<{ mounts: string[]; loops: string[] }> {
  const all = await readMounts();
  const mounts = all.filter((m) => below(m.mountPoint, dir)).map((m) => m.mountPoint);
  const sources = new Set(all.map((m) => m.source));
  const loops = (await listLoops())
    .filter((l) => below(l.backingFile, dir) && (!l.autoclear || sources.has(l.device)))
    .map((l) => l.device);
  return { mounts, loops };
}

async function detachLoopsUnder(dir: string): Promise<void> {
  for (const device of (await kernelStateUnder(dir)).loops) await detachLoop(device).catch(() => undefined);
}

/**
 * Unmounts every mount and detaches every loop device under `dir`, deepest mount first, then
 * deletes it. Touches nothing outside `dir`, so parallel test files and the host are safe.
 */
export async function cleanupTempDir(dir: string): Promise<void> {
  const { mounts } = await kernelStateUnder(dir);
  for (const mountPoint of mounts.sort((a, b) => b.length - a.length)) {
    // Loop devices backed by files on this mount keep it busy (a data root on a test filesystem).
    await detachLoopsUnder(mountPoint);
    await unmount(mountPoint).catch(() => unmount(mountPoint));
  }
  await detachLoopsUnder(dir);
  const left = await kernelStateUnder(dir);
  if (left.mounts.length > 0) throw new Error(`still mounted under ${dir}: ${left.mounts.join(', ')}`);
  await rm(dir, { recursive: true, force: true });
}

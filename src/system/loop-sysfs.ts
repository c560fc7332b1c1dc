import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { loopBackingInodes } from './losetup.js';

/** One attached loop device, read from sysfs: the kernel's own record, no process spawned. */
export interface LoopDevice {
  device: string;
  backingFile: string;
  /** Detaches itself at its last close: set by a deferred detach, or by `mount -o loop`. */
  autoclear: boolean;
}

/**
 * One loop device's state, or undefined when it serves no file (never attached, or detached).
 * sysfs is memory: read synchronously (see isMountPoint).
 */
export function readLoop(device: string): LoopDevice | undefined {
  const name = device.slice('/dev/'.length);
  try {
    const backing = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8');
    const autoclear = readFileSync(`/sys/block/${name}/loop/autoclear`, 'utf8');
    return { device, backingFile: stripDeleted(backing.trimEnd()), autoclear: autoclear.trim() === '1' };
  } catch {
    return undefined;
  }
}

/**
 * Makes loop device `device` pass flushes on to its image (write_cache "write back"), and returns
 * whether it had to. The setting outlives a detach: a device someone once set to "write through"
 * serves the next image with flushes dropped by the block layer, so an fsync inside the volume
 * would never reach the host. Called at every attach of a writable image, before the mount.
 */
export function passFlushes(device: string): boolean {
  const path = `/sys/block/${device.slice('/dev/'.length)}/queue/write_cache`;
  if (readFileSync(path, 'utf8').trim() === 'write back') return false;
  writeFileSync(path, 'write back');
  return true;
}

/** Bytes read through a loop device (its sysfs stat counts 512-byte sectors; not reset by a detach). */
export function loopReadBytes(device: string): number {
  const stat = readFileSync(`/sys/block/${device.slice('/dev/'.length)}/stat`, 'utf8');
  return Number(stat.trim().split(/\s+/)[2]) * 512;
}

/** Every attached loop device with its backing file, from /sys/block (no output parsing). */
export async function listLoops(): Promise<LoopDevice[]> {
  let names: string[];
  try {
    names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  // The kernel keeps every loop device it ever made (a host may have thousands); only an attached
  // one has a loop/ directory, and a failed read costs an exception each.
  const found = names.filter((n) => existsSync(`/sys/block/${n}/loop`)).map((n) => readLoop(`/dev/${n}`));
  return found.filter((l): l is LoopDevice => l !== undefined);
}

/** The kernel appends " (deleted)" when the backing file was unlinked behind our back. */
function stripDeleted(path: string): string {
  return path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
}

/**
 * Loop devices whose backing path leads nowhere in this mount namespace, keyed by their backing
 * file's `major:minor:inode`. A managed plugin that dockerd restarted runs in a new namespace, so
 * devices its previous instance attached (still used by containers) show paths that do not resolve
 * here; their identity is the file itself. One losetup call, made only when such devices exist.
 */
export async function unreachableLoopsByInode(loops: readonly LoopDevice[]): Promise<Map<string, string>> {
  const elsewhere = new Set(
    (
      await Promise.all(loops.map(async (l) => ((await reachable(l.backingFile)) ? undefined : l.device)))
    ).filter((d): d is string => d !== undefined),
  );
  const byInode = new Map<string, string>();
  if (elsewhere.size === 0) return byInode;
  for (const l of await loopBackingInodes()) {
    if (elsewhere.has(l.device)) byInode.set(`${l.backDev}:${l.backIno}`, l.device);
  }
  return byInode;
}

/** The `major:minor:inode` key of a file, as unreachableLoopsByInode keys devices. */
export async function inodeKey(path: string): Promise<string | undefined> {
  const s = await stat(path, { bigint: true }).catch(() => undefined);
  return s ? `${devMajor(s.dev)}:${devMinor(s.dev)}:${s.ino}` : undefined;
}

const reachable = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** glibc's encoding of dev_t (major and minor are split across high and low bits). */
const devMajor = (dev: bigint) => ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
const devMinor = (dev: bigint) => (dev & 0xffn) | ((dev >> 12n) & ~0xffn);

/** Every loop device serving `imagePath`, by path or, failing that, by device and inode. */
export async function loopsOf(imagePath: string): Promise<LoopDevice[]> {
  const loops = await listLoops();
  const byPath = loops.filter((l) => l.backingFile === imagePath);
  if (byPath.length > 0) return byPath;
  const key = await inodeKey(imagePath);
  const device = key === undefined ? undefined : (await unreachableLoopsByInode(loops)).get(key);
  return loops.filter((l) => l.device === device);
}

/**
 * Loop devices serving `imagePath` (normally zero or one) that are not on their way out. loopvol
 * never sets autoclear, so an autoclear device of its image is one whose detach the kernel
 * deferred: something still holds it. It is never detached again, and never paired with a second.
 */
export async function loopsFor(imagePath: string): Promise<string[]> {
  return (await loopsOf(imagePath)).filter((l) => !l.autoclear).map((l) => l.device);
}

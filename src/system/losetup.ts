import { readdir, readFile, stat } from 'node:fs/promises';
import { CommandError, run } from './exec.js';

/**
 * Attaches an image file to the first free loop device and returns its path (/dev/loopN).
 * Direct I/O skips the host page cache twice-over (measured faster, see shared/docs/limits.md).
 */
export async function attachLoop(imagePath: string): Promise<string> {
  return run('losetup', ['--find', '--show', '--direct-io=on', '--', imagePath]);
}

/**
 * Detaches a loop device. When another process (udev's probe, blkid) still has it open, the kernel
 * defers the detach to that last close and marks the device autoclear; asked again meanwhile, it
 * answers ENXIO. Both mean the device is going away, so neither is an error.
 */
export async function detachLoop(device: string): Promise<void> {
  try {
    await run('losetup', ['--detach', device]);
  } catch (err) {
    if (err instanceof CommandError && err.stderr.includes('No such device or address')) return;
    throw err;
  }
}

/** One attached loop device, read from sysfs: the kernel's own record, no process spawned. */
export interface LoopDevice {
  device: string;
  backingFile: string;
  /** Detaches itself at its last close: set by a deferred detach, or by `mount -o loop`. */
  autoclear: boolean;
}

/**
 * Lists attached loop devices with their backing files. Reads /sys/block/loop* directly so that
 * start-up reconcile and Get stay cheap and need no output parsing.
 */
export async function listLoops(): Promise<LoopDevice[]> {
  let names: string[];
  try {
    names = (await readdir('/sys/block')).filter((n) => /^loop\d+$/.test(n));
  } catch {
    return [];
  }
  const found = await Promise.all(
    names.map(async (name): Promise<LoopDevice | undefined> => {
      try {
        const [backing, autoclear] = await Promise.all([
          readFile(`/sys/block/${name}/loop/backing_file`, 'utf8'),
          readFile(`/sys/block/${name}/loop/autoclear`, 'utf8').catch(() => '0'),
        ]);
        return {
          device: `/dev/${name}`,
          backingFile: stripDeleted(backing.trimEnd()),
          autoclear: autoclear.trim() === '1',
        };
      } catch {
        return undefined; // not attached
      }
    }),
  );
  return found.filter((l): l is LoopDevice => l !== undefined);
}

/** The kernel appends " (deleted)" when the backing file was unlinked behind our back. */
function stripDeleted(path: string): string {
  return path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
}

/**
 * Every loop device serving `imagePath`, found by path or, failing that, by device and inode.
 * A device records its file's path as seen by whoever attached it. A managed plugin that dockerd
 * restarted runs in a new mount namespace, so devices its previous instance attached (still used by
 * containers) show paths that lead nowhere here; those are matched by inode, with one losetup call,
 * so that a Mount never attaches a second device, a second filesystem instance, for one image.
 */
export async function loopsOf(imagePath: string): Promise<LoopDevice[]> {
  const loops = await listLoops();
  const byPath = loops.filter((l) => l.backingFile === imagePath);
  if (byPath.length > 0) return byPath;
  const elsewhere = (
    await Promise.all(loops.map(async (l) => ((await reachable(l.backingFile)) ? undefined : l)))
  ).filter((l): l is LoopDevice => l !== undefined);
  if (elsewhere.length === 0) return [];
  const image = await stat(imagePath, { bigint: true }).catch(() => undefined);
  if (!image) return [];
  const out = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO']);
  const wanted = `${devMajor(image.dev)}:${devMinor(image.dev)}`;
  const matching = new Set(
    ((JSON.parse(out || '{}') as Partial<LosetupList>).loopdevices ?? [])
      .filter((d) => String(d['back-maj:min']).trim() === wanted && BigInt(d['back-ino']) === image.ino)
      .map((d) => d.name),
  );
  return elsewhere.filter((l) => matching.has(l.device));
}

interface LosetupList {
  loopdevices: { name: string; 'back-maj:min': string; 'back-ino': number | string }[];
}

const reachable = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/** glibc's encoding of dev_t (major and minor are split across high and low bits). */
const devMajor = (dev: bigint) => ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
const devMinor = (dev: bigint) => (dev & 0xffn) | ((dev >> 12n) & ~0xffn);

/**
 * Loop devices serving `imagePath` (normally zero or one) that are not on their way out. loopvol
 * never sets autoclear, so an autoclear device of its image is one whose detach the kernel
 * deferred: something still holds it, such as a mount namespace a container copied while the
 * volume was mounted. It is never detached again, and never paired with a second device.
 */
export async function loopsFor(imagePath: string): Promise<string[]> {
  return (await loopsOf(imagePath)).filter((l) => !l.autoclear).map((l) => l.device);
}

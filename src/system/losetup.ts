import { readdir, readFile } from 'node:fs/promises';
import { run } from './exec.js';

/**
 * Attaches an image file to the first free loop device and returns its path (/dev/loopN).
 * Direct I/O skips the host page cache twice-over (measured faster, see shared/docs/limits.md).
 */
export async function attachLoop(imagePath: string): Promise<string> {
  return run('losetup', ['--find', '--show', '--direct-io=on', '--', imagePath]);
}

export async function detachLoop(device: string): Promise<void> {
  await run('losetup', ['--detach', device]);
}

/** One attached loop device, read from sysfs: the kernel's own record, no process spawned. */
export interface LoopDevice {
  device: string;
  backingFile: string;
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
        const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8');
        return { device: `/dev/${name}`, backingFile: stripDeleted(backing.trimEnd()) };
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

/** Loop devices whose backing file is `imagePath` (normally zero or one). */
export async function loopsFor(imagePath: string): Promise<string[]> {
  return (await listLoops()).filter((l) => l.backingFile === imagePath).map((l) => l.device);
}

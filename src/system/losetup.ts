import { CommandError, run } from './exec.js';
import type { LoopAttachOptions } from './loop-options.js';

/** Attaches an image file to the first free loop device with losetup; returns /dev/loopN. */
export async function attachLoop(imagePath: string, options: LoopAttachOptions): Promise<string> {
  const args = ['--find', '--show', `--direct-io=${options.directIo ? 'on' : 'off'}`];
  if (options.blockSize) args.push('--sector-size', String(options.blockSize));
  if (options.readOnly) args.push('--read-only');
  return run('losetup', [...args, '--', imagePath]);
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

/** Each attached loop device's backing file as device and inode (`major:minor` and inode number). */
export async function loopBackingInodes(): Promise<{ device: string; backDev: string; backIno: bigint }[]> {
  const out = await run('losetup', ['--list', '--json', '--output', 'NAME,BACK-MAJ:MIN,BACK-INO']);
  const list = (JSON.parse(out || '{}') as Partial<LosetupList>).loopdevices ?? [];
  return list.map((d) => ({
    device: d.name,
    backDev: String(d['back-maj:min']).trim(),
    backIno: BigInt(d['back-ino']),
  }));
}

interface LosetupList {
  loopdevices: { name: string; 'back-maj:min': string; 'back-ino': number | string }[];
}

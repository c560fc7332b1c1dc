import { execa } from 'execa';

/**
 * Block groups of an ext4 image whose inode table is not yet zeroed: the kernel's lazy-init thread
 * zeroes those after mount, which punches holes in a file behind a loop device.
 */
export async function unzeroedInodeTables(image: string): Promise<number> {
  const { stdout } = await execa('dumpe2fs', [image], { stderr: 'ignore' });
  return stdout.split('\n').filter((l) => /^Group \d+:/.test(l) && !l.includes('ITABLE_ZEROED')).length;
}

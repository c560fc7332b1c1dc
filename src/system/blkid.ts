import { CommandError, run } from './exec.js';

/**
 * The filesystem (or other signature: LVM, RAID, partition table) on a device, probed directly
 * rather than from blkid's cache; undefined when the device holds none.
 */
export async function probeSignature(device: string): Promise<string | undefined> {
  try {
    const type = await run('blkid', ['-p', '-o', 'value', '-s', 'TYPE', '--', device]);
    if (type) return type;
    // No TYPE but something was found (a partition table reports PTTYPE).
    const pt = await run('blkid', ['-p', '-o', 'value', '-s', 'PTTYPE', '--', device]);
    return pt ? `partition table (${pt})` : 'unknown signature';
  } catch (err) {
    // blkid exits 2 when it finds nothing to report.
    if (err instanceof CommandError && err.exitCode === 2) return undefined;
    throw err;
  }
}

/** Erases every filesystem/RAID/partition-table signature so the device reads as blank. */
export async function wipeSignatures(device: string): Promise<void> {
  await run('wipefs', ['--all', '--quiet', '--', device]);
}

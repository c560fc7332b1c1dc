import { execFileSync } from 'node:child_process';

/** True when CI=true: then a missing tool fails the suite instead of skipping it. */
export const inCI = process.env.CI === 'true';

function hasCommand(name: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether storage tests can run: root and the tools. Outside CI a missing piece skips with the
 * reason; under CI it throws, because a skipped storage test there hides a broken machine.
 */
export function storageAvailable(
  tools: string[] = ['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'umount', 'fallocate'],
): boolean {
  const missing = tools.filter((t) => !hasCommand(t));
  const problems = [...(process.getuid?.() === 0 ? [] : ['root']), ...missing];
  if (problems.length === 0) return true;
  const message = `storage tests need: ${problems.join(', ')}`;
  if (inCI) throw new Error(`${message} (CI=true: a missing tool is a failure; see .ci/run)`);
  console.warn(`skipping: ${message}`);
  return false;
}

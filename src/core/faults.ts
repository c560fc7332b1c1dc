/**
 * Test-only crash injection: LOOPVOL_CRASH_AT=<step> (read once at start) makes the daemon kill
 * itself with SIGKILL when it reaches that step, so tests can prove every step boundary restarts
 * into a consistent state. Unset, every call is a no-op comparison.
 */
const crashAt = process.env.LOOPVOL_CRASH_AT ?? '';

/** Every step boundary, in lifecycle order; tests iterate over this list. */
export const CRASH_STEPS = [
  'create:staged',
  'create:image',
  'create:formatted',
  'create:committed',
  'mount:attached',
  'mount:mounted',
  'mount:root-prepared',
  'mount:recorded',
  'unmount:recorded',
  'unmount:unmounted',
  'unmount:detached',
  'remove:released',
  'remove:trashed',
  'remove:deleted',
  'resize:image',
  'resize:capacity',
  'resize:grown',
  'resize:recorded',
] as const;

/** Step boundaries of taking a snapshot (test/integration/snapshots.test.ts kills at each). */
export const SNAPSHOT_CRASH_STEPS = ['snapshot:marked', 'snapshot:frozen', 'snapshot:copied'] as const;

/**
 * Reached only when loop devices attach in steps (LOOPVOL_LOOP_ATTACH=set-fd, kernels before 5.8):
 * the device serves the image but has neither its name nor its block size and direct I/O yet.
 */
export const LOOP_ATTACH_CRASH_STEPS = ['mount:set-fd'] as const;

/** Step boundaries of a backup and of a restore from one (test/integration/file-backup.test.ts). */
export const BACKUP_CRASH_STEPS = ['backup:mounted', 'backup:frozen', 'restore:mounted'] as const;

export type CrashStep =
  | (typeof CRASH_STEPS)[number]
  | (typeof SNAPSHOT_CRASH_STEPS)[number]
  | (typeof LOOP_ATTACH_CRASH_STEPS)[number]
  | (typeof BACKUP_CRASH_STEPS)[number];

/** Steps reached after the request was answered (a removed volume's files are deleted afterwards). */
export const AFTER_ANSWER_STEPS: readonly CrashStep[] = ['remove:deleted'];

export function crashPoint(step: CrashStep): void {
  if (crashAt === step) process.kill(process.pid, 'SIGKILL');
}

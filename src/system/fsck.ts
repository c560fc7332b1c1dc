import type { FsType } from '../core/fs-type.js';
import { runTool, type ToolResult } from './exec.js';

/** What a filesystem check found and did. */
export interface CheckReport {
  /** No problem left: clean from the start or repaired. */
  clean: boolean;
  /** The checker changed the filesystem. */
  repaired: boolean;
  /** xfs only: the log must be replayed by a mount before xfs_repair can look. */
  dirtyLog: boolean;
  /** The checker's own lines, for the log and the operator. */
  output: string[];
  command: string;
  exitCode: number;
}

/** Checks of large filesystems take minutes; a Docker request would have given up long before. */
const CHECK_TIMEOUT_MS = 3_600_000;

async function check(
  tool: string,
  args: string[],
  judge: (r: ToolResult) => Pick<CheckReport, 'clean' | 'repaired' | 'dirtyLog'>,
): Promise<CheckReport> {
  const r = await runTool(tool, args, { timeoutMs: CHECK_TIMEOUT_MS });
  const output = `${r.stdout}\n${r.stderr}`
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '');
  return { ...judge(r), output, command: [tool, ...args].join(' '), exitCode: r.exitCode };
}

/**
 * e2fsck: -p (preen) replays the journal and fixes what is safe without a human, as a boot does;
 * -n only looks; -y answers yes to every fix. Exit 0: clean, 1 or 2: repaired, 4 and up: problems left.
 */
function e2fsck(target: string, mode: '-p' | '-n' | '-y'): Promise<CheckReport> {
  const args = [...(mode === '-p' ? [] : ['-f']), mode, '--', target];
  return check('e2fsck', args, ({ exitCode }) => ({
    clean: exitCode < 4,
    repaired: mode !== '-n' && (exitCode === 1 || exitCode === 2),
    dirtyLog: false,
  }));
}

/** The check run before mounting an ext4 filesystem that was not left cleanly. */
export const preenExt4 = (target: string) => e2fsck(target, '-p');

/** xfs_repair (-f: the target may be an image file). Exit 1: corruption; 2: the log needs a mount first. */
const xfsRepair = (target: string, dryRun: boolean) =>
  check('xfs_repair', [...(dryRun ? ['-n'] : []), '-f', target], ({ exitCode }) => ({
    clean: exitCode === 0,
    repaired: false,
    dirtyLog: exitCode === 2,
  }));

/**
 * A full check of an unmounted filesystem in an image file or on a device: read-only unless
 * `repair`, which applies every fix (the operator asked for it by name).
 */
export async function checkFilesystem(target: string, fs: FsType, repair: boolean): Promise<CheckReport> {
  if (fs === 'ext4') return e2fsck(target, repair ? '-y' : '-n');
  // xfs_repair says nothing reliable about what it changed: look first, repair only if needed.
  const found = await xfsRepair(target, true);
  if (!repair || found.exitCode !== 1) return found;
  const fixed = await xfsRepair(target, false);
  return { ...fixed, repaired: fixed.clean, output: [...found.output, ...fixed.output] };
}

/** Why a mount failure means a damaged filesystem (EUCLEAN), as mount(2) or mount(8) words it. */
export const looksDamaged = (message: string) =>
  /EUCLEAN|EFSCORRUPTED|Structure needs cleaning|bad superblock|errno 117/i.test(message);

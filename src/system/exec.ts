import { setPriority } from 'node:os';

/** Loaded at the first tool run: most requests run none, and start-up need not pay for it (~150 ms). */
let execaModule: Promise<typeof import('execa')> | undefined;

/** Options for one run of a system tool. */
export interface RunOptions {
  /** Kill the tool after this long; a hung mkfs or umount must not hang a Docker request (default 60 s). */
  timeoutMs?: number;
  /** Exit codes that mean success besides 0 (e2fsck exits 1 after safe repairs). */
  alsoSuccess?: readonly number[];
  /** CPU niceness for work off the request path (19: only what requests leave); default unchanged. */
  niceness?: number;
}

/** A system tool exited non-zero, timed out or could not start; `message` carries its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly exitCode: number | undefined,
    readonly stderr: string,
    reason: string,
  ) {
    super(`${command} failed (${reason})${stderr ? `: ${stderr}` : ''}`);
    this.name = 'CommandError';
  }
}

/** What a tool printed and how it exited. */
export interface ToolResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program with an argument vector: never a shell, so names and options from requests
 * cannot be interpreted as shell syntax. Any exit code is returned (checkers such as e2fsck report
 * through it); a timeout or a program that cannot start throws.
 */
export async function runTool(
  file: string,
  args: readonly string[],
  options: Pick<RunOptions, 'timeoutMs' | 'niceness'> = {},
): Promise<ToolResult> {
  execaModule ??= import('execa');
  const { execa } = await execaModule;
  const subprocess = execa(file, args, {
    timeout: options.timeoutMs ?? 60_000,
    reject: false,
    stdin: 'ignore',
    env: { LC_ALL: 'C' },
  });
  if (options.niceness !== undefined && subprocess.pid !== undefined) {
    try {
      setPriority(subprocess.pid, options.niceness);
    } catch {
      // Already exited, or not permitted: it runs at normal priority, which is only slower for others.
    }
  }
  const result = await subprocess;
  const stdout = (result.stdout ?? '').toString().trim();
  const stderr = (result.stderr ?? '').toString().trim();
  if (result.exitCode === undefined || result.timedOut) {
    const reason = result.timedOut ? 'timed out' : (result.originalMessage ?? 'could not start');
    throw new CommandError([file, ...args].join(' '), result.exitCode, stderr, reason);
  }
  return { exitCode: result.exitCode, stdout, stderr };
}

/** Runs a program (see runTool) that must succeed; returns its trimmed stdout. */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await runTool(file, args, options);
  if (result.exitCode !== 0 && !(options.alsoSuccess ?? []).includes(result.exitCode)) {
    throw new CommandError(
      [file, ...args].join(' '),
      result.exitCode,
      result.stderr,
      `exit ${result.exitCode}`,
    );
  }
  return result.stdout;
}

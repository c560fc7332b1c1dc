/** Loaded at the first tool run: most requests run none, and start-up need not pay for it (~150 ms). */
let execaModule: Promise<typeof import('execa')> | undefined;

/** Options for one run of a system tool. */
export interface RunOptions {
  /** Kill the tool after this long; a hung mkfs or umount must not hang a Docker request (default 60 s). */
  timeoutMs?: number;
  /** Exit codes that mean success besides 0 (e2fsck exits 1 after safe repairs). */
  alsoSuccess?: readonly number[];
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

/**
 * Runs a program with an argument vector: never a shell, so names and options from requests
 * cannot be interpreted as shell syntax. Returns trimmed stdout.
 */
export async function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  execaModule ??= import('execa');
  const { execa } = await execaModule;
  const result = await execa(file, args, {
    timeout: options.timeoutMs ?? 60_000,
    reject: false,
    stdin: 'ignore',
    env: { LC_ALL: 'C' },
  });
  const accepted = result.exitCode !== undefined && (options.alsoSuccess ?? []).includes(result.exitCode);
  if (result.failed && !accepted) {
    const shown = [file, ...args].join(' ');
    const stderr = (result.stderr ?? '').toString().trim();
    const reason = result.timedOut
      ? 'timed out'
      : result.exitCode !== undefined
        ? `exit ${result.exitCode}`
        : (result.originalMessage ?? 'could not start');
    throw new CommandError(shown, result.exitCode, stderr, reason);
  }
  return (result.stdout ?? '').toString().trim();
}

import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';

/** Output kept from one tool run; more is an error (no tool loopvol runs prints near this). */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** After a timeout's SIGTERM, how long a tool gets to exit before SIGKILL. */
const KILL_GRACE_MS = 5_000;

/** Options for one run of a system tool. */
export interface RunOptions {
  /** Kill the tool after this long; a hung mkfs or umount must not hang a Docker request (default 60 s). */
  timeoutMs?: number;
  /** Exit codes that mean success besides 0 (e2fsck exits 1 after safe repairs). */
  alsoSuccess?: readonly number[];
  /** CPU niceness for work off the request path (19: only what requests leave); default unchanged. */
  niceness?: number;
  /** The directory the tool runs in; default the daemon's. */
  cwd?: string;
  /** At the timeout: the signal asking the tool to stop (default SIGTERM), and how long before SIGKILL. */
  stop?: { signal: NodeJS.Signals; graceMs: number };
  /** Environment variables added to the daemon's (a tool's switches that have no flag). */
  env?: Readonly<Record<string, string>>;
}

type ToolOptions = Pick<RunOptions, 'timeoutMs' | 'niceness' | 'cwd' | 'stop' | 'env'>;

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

/** A tool that ran past its timeout and was stopped. */
export class ToolTimedOut extends CommandError {}

const TIMED_OUT = 'timed out';

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
  options: ToolOptions = {},
): Promise<ToolResult> {
  const command = [file, ...args].join(' ');
  const { code, signal, stdout, stderr, failure } = await spawnTool(file, args, options);
  if (failure === TIMED_OUT) throw new ToolTimedOut(command, undefined, stderr, failure);
  if (failure !== undefined || code === null) {
    throw new CommandError(command, undefined, stderr, failure ?? `killed by ${signal}`);
  }
  return { exitCode: code, stdout, stderr };
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Why there is no exit code to report: could not start, timed out, too much output. */
  failure?: string;
}

/**
 * child_process.spawn, not execa: a tool run on the Create path costs about 2 ms through spawn and
 * 4.4-4.8 ms p50 (14 ms p99) through execa on this kind of machine, most of it on the event loop
 * that every other request waits for.
 */
function spawnTool(file: string, args: readonly string[], options: ToolOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env, LC_ALL: 'C' },
      cwd: options.cwd,
    });
    if (options.niceness !== undefined && child.pid !== undefined) {
      try {
        setPriority(child.pid, options.niceness);
      } catch {
        // Already exited, or not permitted: it runs at normal priority, which is only slower for others.
      }
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let failure: string | undefined;
    const stop = (reason: string) => {
      failure ??= reason;
      const { signal, graceMs } = options.stop ?? { signal: 'SIGTERM', graceMs: KILL_GRACE_MS };
      child.kill(signal);
      setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
    };
    const collect = (into: Buffer[]) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT_BYTES) stop(`printed over ${MAX_OUTPUT_BYTES} bytes`);
      else into.push(chunk);
    };
    child.stdout.on('data', collect(out));
    child.stderr.on('data', collect(err));
    const timer = setTimeout(() => stop(TIMED_OUT), options.timeoutMs ?? 60_000);
    const text = (chunks: Buffer[]) => Buffer.concat(chunks).toString('utf8').trim();
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, stdout: text(out), stderr: text(err), failure: error.message });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: text(out), stderr: text(err), failure });
    });
  });
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

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { postRaw } from '../../src/protocol/client.js';
import { cleanupTempDir, makeTempDir } from './kernel.js';

export const BIN = new URL('../../bin/loopvol', import.meta.url).pathname;

/** An HTTP reply from the plugin: status and the parsed JSON body (or the raw text if not JSON). */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
  raw: string;
}

/** POSTs one protocol call to a Unix socket, as dockerd does: no Content-Type. */
export async function call(
  socket: string,
  method: string,
  body: unknown = {},
  timeoutMs = 120_000,
): Promise<Reply> {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  const { status, raw } = await postRaw({ kind: 'unix', path: socket }, method, payload, {}, timeoutMs);
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(raw);
  } catch {
    parsed = { unparsed: raw };
  }
  return { status, body: parsed, raw };
}

/** A loopvol daemon started by a test, on its own socket and data root. */
export interface PluginProcess {
  socket: string;
  dataRoot: string;
  child: ChildProcess;
  /** Everything the daemon logged (JSON lines). */
  logs(): string;
  call(method: string, body?: unknown): Promise<Reply>;
  /** Resolves once the daemon's output matches `pattern` (output arrives asynchronously). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait: the crash case. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** The executable to start; defaults to this checkout's bin/loopvol. */
  bin?: string;
  /** `bin` runs by itself (the single executable), not as a script given to node. */
  standalone?: boolean;
  args?: string[];
  env?: Record<string, string>;
  /** Defaults to <dir>/plugin.sock and <dir>/root. */
  socket?: string;
  dataRoot?: string;
}

/** Starts `bin/loopvol serve` and waits until it answers Plugin.Activate. */
export async function startPlugin(dir: string, options: StartOptions = {}): Promise<PluginProcess> {
  const socket = options.socket ?? join(dir, 'plugin.sock');
  const dataRoot = options.dataRoot ?? join(dir, 'root');
  const [command, ...script] =
    options.standalone && options.bin ? [options.bin] : [process.execPath, options.bin ?? BIN];
  const child = spawn(
    command as string,
    [
      ...script,
      'serve',
      '--socket',
      socket,
      '--data-root',
      dataRoot,
      '--log-level',
      'debug',
      ...(options.args ?? []),
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const plugin: PluginProcess = {
    socket,
    dataRoot,
    child,
    logs: () => output,
    async waitForLog(pattern, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`no log line matched ${pattern}:\n${output}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    call: (method, body) => call(socket, method, body),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`loopvol exited with ${child.exitCode}:\n${output}`);
    try {
      const reply = await call(socket, 'Plugin.Activate', '', 2_000);
      if (reply.status === 200) return plugin;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await plugin.kill();
      throw new Error(`loopvol did not answer on ${socket}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Registers the hooks of a describe block whose tests each start daemons in a temp dir of their
 * own: `begin` makes the dir, `start` starts a daemon there; afterEach kills every daemon the test
 * started (also on failure) and deletes the dir.
 */
export function pluginCases(): {
  begin(label: string): Promise<string>;
  start(options?: StartOptions): Promise<PluginProcess>;
} {
  let dir: string | undefined;
  const running: PluginProcess[] = [];
  afterEach(async () => {
    for (const p of running.splice(0)) await p.kill();
    if (dir) await cleanupTempDir(dir);
    dir = undefined;
  });
  return {
    async begin(label) {
      dir = await makeTempDir(label);
      return dir;
    },
    async start(options = {}) {
      if (!dir) throw new Error('pluginCases: begin() first');
      const p = await startPlugin(dir, options);
      running.push(p);
      return p;
    },
  };
}

/** The cells of the row of `loopvol ls` output (columns two or more spaces apart) that starts with `first`. */
export function tableRow(table: string, first: string): string[] | undefined {
  return table
    .split('\n')
    .find((r) => r.trim().startsWith(`${first} `))
    ?.trim()
    .split(/\s{2,}/);
}

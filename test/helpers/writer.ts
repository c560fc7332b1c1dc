import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';

/**
 * Appends a line and fsyncs it every few milliseconds, as a database does, until a write fails;
 * prints `ok <epoch ms>` per durable write and `err <epoch ms> <code>` at the first failure, then
 * exits 1. Run as its own process so that it keeps writing while the daemon is cut off or paused.
 */
const SCRIPT = `
const fs = require('node:fs');
const fd = fs.openSync(process.argv[1], 'a');
const step = () => {
  try {
    fs.writeSync(fd, 'row ' + Date.now() + '\\n');
    fs.fsyncSync(fd);
    process.stdout.write('ok ' + Date.now() + '\\n');
  } catch (err) {
    process.stdout.write('err ' + Date.now() + ' ' + err.code + '\\n');
    process.exit(1);
  }
  setTimeout(step, 20);
};
step();
`;

export interface Writer {
  child: ChildProcess;
  /** Epoch ms of every durable write so far. */
  writes(): number[];
  /** The first failure: when and with which errno name; undefined while it writes on. */
  failure(): { at: number; code: string } | undefined;
  /** Resolves with the failure once the writer has stopped on one. */
  failed(): Promise<{ at: number; code: string }>;
  /** Kills it (also when it already stopped). */
  stop(): Promise<void>;
}

export async function startWriter(file: string): Promise<Writer> {
  const child = spawn(process.execPath, ['-e', SCRIPT, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = once(child, 'exit');
  const lines = () => output.split('\n');
  const writer: Writer = {
    child,
    writes: () =>
      lines()
        .filter((l) => l.startsWith('ok '))
        .map((l) => Number(l.split(' ')[1])),
    failure() {
      const line = lines().find((l) => l.startsWith('err '));
      if (!line) return undefined;
      const [, at, code] = line.split(' ');
      return { at: Number(at), code: String(code) };
    },
    async failed() {
      await exited;
      const found = writer.failure();
      if (!found) throw new Error(`the writer stopped without a failure:\n${output}`);
      return found;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  const deadline = Date.now() + 10_000;
  while (writer.writes().length === 0) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`the writer did not write:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return writer;
}

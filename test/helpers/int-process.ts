import { spawn } from 'node:child_process';
import { finished } from 'node:stream/promises';
import { BIN, type PluginProcess } from './plugin.js';

/** How a loopvol run that was expected to end, ended. */
export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr together. */
  output: string;
}

/**
 * Runs `bin/loopvol ARGS` to completion: for daemons that must refuse to start. A run still going
 * after `timeoutMs` is SIGKILLed (by its own handle) and reported with that signal.
 */
export function runLoopvol(args: string[], timeoutMs = 30_000): Promise<Finished> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (d: Buffer) => {
    output += d.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output });
    });
  });
}

/**
 * Waits until the plugin has exited and its output pipes are drained: the child's 'exit' can come
 * before the last log lines are read, so logs() read right after stop() may miss them.
 */
export async function drained(plugin: PluginProcess): Promise<void> {
  await Promise.all(
    [plugin.child.stdout, plugin.child.stderr].map((stream) =>
      stream && !stream.readableEnded ? finished(stream).catch(() => undefined) : undefined,
    ),
  );
}

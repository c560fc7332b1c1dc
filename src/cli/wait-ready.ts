import { setTimeout as sleep } from 'node:timers/promises';
import { settingsFromConfigFile } from '../config/file.js';
import { resolveConfig } from '../config/resolve.js';
import { formatDuration, parseDuration } from '../core/duration.js';
import { postRaw } from '../protocol/client.js';
import { formatHelp, noMore, parseCommandLine, UsageError } from './args.js';

export const WAIT_READY_HELP = formatHelp({
  usage: ['wait-ready [--socket PATH] [--config FILE] [--timeout TIME]'],
  about:
    'Waits until the daemon answers Plugin.Activate on its socket, as dockerd will ask it: exit 0 then, ' +
    '1 after --timeout. The socket is found as serve finds it: --socket, env LOOPVOL_SOCKET, the config ' +
    'file\'s "socket" (--config, env LOOPVOL_CONFIG), else /run/docker/plugins/loopvol.sock. The systemd ' +
    'unit runs it as ExecStartPost=, so units ordered after loopvol (docker.service) start only once ' +
    'the socket answers.',
  options: [
    ['--socket PATH', "the daemon's socket"],
    ['--config FILE', "the daemon's config file, to find its socket"],
    ['--timeout TIME', 'how long to wait: 500ms, 2s, 1m, or a bare number of seconds (default 60s)'],
  ],
  example: 'loopvol wait-ready --timeout 30s',
});

export const WAIT_READY_OPTIONS = {
  socket: { type: 'string' },
  config: { type: 'string' },
  timeout: { type: 'string' },
} as const;

const POLL_MS = 100;

export async function waitReadyCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, WAIT_READY_OPTIONS);
  noMore(positionals, 0);
  const timeout = parseDuration('--timeout', values.timeout ?? '60s', { minMs: 0, maxMs: 3_600_000 });
  if ('error' in timeout) throw new UsageError(timeout.error);
  const flags = { socket: values.socket, config: values.config };
  const { socket } = resolveConfig(flags, process.env, await settingsFromConfigFile(flags, process.env));

  const deadline = Date.now() + timeout.ms;
  let last = 'no answer yet';
  for (;;) {
    try {
      const { status } = await postRaw({ kind: 'unix', path: socket }, 'Plugin.Activate', '', {}, 2_000);
      if (status === 200) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) {
      throw new Error(
        `the daemon did not answer on ${socket} within ${formatDuration(timeout.ms)} (${last}): ` +
          'see its log (journalctl -u loopvol)',
      );
    }
    await sleep(POLL_MS);
  }
}

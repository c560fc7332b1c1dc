import { DEFAULTS, ENV } from '../config/settings.js';
import { callLoopvol } from '../protocol/client.js';
import type { Method, ReplyOf, RequestOf } from '../protocol/wire.js';

/** The operator commands' common flag: where the running daemon listens. */
export const SOCKET_OPTION = [
  '--socket PATH',
  `the running daemon's socket (env ${ENV.socket}, default ${DEFAULTS.socket}); asking it serialises the work with Docker's requests`,
] as const;

/** The --socket flag, as parseArgs takes it. */
export const SOCKET_FLAG = { socket: { type: 'string' } } as const;

/** Errors of a socket nobody listens on: no file there, or a file no process accepts on. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * Calls the running daemon as dockerd does, over its socket; the reply is checked against the
 * method's (protocol/wire.ts). `timeoutMs`: how long the work may take (a resize or a large
 * preallocated create takes minutes). A daemon that is not there is said so, with where to look.
 */
export async function askDaemon<M extends Method>(
  socket: string | undefined,
  method: M,
  body: RequestOf<M>,
  timeoutMs = 120_000,
): Promise<ReplyOf<M>> {
  const path = socket ?? process.env[ENV.socket] ?? DEFAULTS.socket;
  try {
    return await callLoopvol({ kind: 'unix', path }, method, body, timeoutMs);
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code && UNREACHABLE.has(code)) {
      throw new Error(
        `no loopvol daemon answers on ${path} (${code}): is loopvol running? try: loopvol doctor${socket ? ` --socket ${path}` : ''}`,
      );
    }
    throw err;
  }
}

import { DEFAULTS, ENV } from '../config/settings.js';
import { callLoopvol } from '../protocol/client.js';
import type { Method, ReplyOf, RequestOf } from '../protocol/wire.js';

/** The operator commands' common flag: where the running daemon listens. */
export const SOCKET_HELP =
  "Asks the running daemon on --socket (env LOOPVOL_SOCKET, default /run/docker/plugins/loopvol.sock),\n  so its work is serialised with Docker's requests.";

/**
 * Calls the running daemon as dockerd does, over its socket; the reply is checked against the
 * method's (protocol/wire.ts). `timeoutMs`: how long the work may take (a resize or a large
 * preallocated create takes minutes).
 */
export function askDaemon<M extends Method>(
  socket: string | undefined,
  method: M,
  body: RequestOf<M>,
  timeoutMs = 120_000,
): Promise<ReplyOf<M>> {
  const path = socket ?? process.env[ENV.socket] ?? DEFAULTS.socket;
  return callLoopvol({ kind: 'unix', path }, method, body, timeoutMs);
}

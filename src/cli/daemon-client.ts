import { DEFAULTS, ENV } from '../config/settings.js';
import { callPlugin } from '../protocol/client.js';

/** The operator commands' common flag: where the running daemon listens. */
export const SOCKET_HELP =
  "Asks the running daemon on --socket (env LOOPVOL_SOCKET, default /run/docker/plugins/loopvol.sock),\n  so its work is serialised with Docker's requests.";

/**
 * Calls the running daemon as dockerd does, over its socket. `timeoutMs`: how long the work may
 * take (a resize or a large preallocated create takes minutes).
 */
export function askDaemon(
  socket: string | undefined,
  method: string,
  body: unknown,
  timeoutMs = 120_000,
): Promise<Record<string, unknown>> {
  const path = socket ?? process.env[ENV.socket] ?? DEFAULTS.socket;
  return callPlugin({ kind: 'unix', path }, method, body, timeoutMs);
}

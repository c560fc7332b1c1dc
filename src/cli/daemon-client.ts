import { existsSync } from 'node:fs';
import { settingsFromConfigFile } from '../config/file.js';
import { DEFAULTS, ENV } from '../config/settings.js';
import { discoveryRoots } from '../dvdcli/discovery.js';
import { dockerHost, findManagedPlugin, ManagedPluginDisabledError } from '../dvdcli/managed.js';
import { callLoopvol, type PluginAddress } from '../protocol/client.js';
import type { Method, ReplyOf, RequestOf } from '../protocol/wire.js';

/** The managed plugin's name the commands ask dockerd for when no socket answers (env LOOPVOL_DRIVER). */
const DRIVER_ENV = 'LOOPVOL_DRIVER';

/** The operator commands' common flag: where the running daemon listens. */
export const SOCKET_OPTION = [
  '--socket PATH',
  `the running daemon's socket (env ${ENV.socket}, default ${DEFAULTS.socket}, else the managed plugin dockerd runs as loopvol, or as env ${DRIVER_ENV}); asking it serialises the work with Docker's requests`,
] as const;

/** The --socket flag, as parseArgs takes it. */
export const SOCKET_FLAG = { socket: { type: 'string' } } as const;

/** Errors of a socket nobody listens on: no file there, or a file no process accepts on. */
const UNREACHABLE = new Set(['ENOENT', 'ECONNREFUSED']);

export const driverName = () => process.env[DRIVER_ENV] || 'loopvol';

/** Where the daemon listens; `managed`: the managed plugin's name, when dockerd runs it. */
export interface DaemonLocation {
  path: string;
  /** Named by --socket, LOOPVOL_SOCKET or the config file, rather than found. */
  given?: boolean;
  managed?: string;
}

/**
 * The daemon's socket: --socket, else env LOOPVOL_SOCKET, else the config file's (LOOPVOL_CONFIG, as
 * for serve); none given, the default socket, or,
 * when there is none, the managed plugin `driver` that dockerd runs (docker plugin install): it has
 * no socket at the default path, and dockerd knows where its socket is.
 */
export async function locateDaemon(
  socket: string | undefined,
  driver = driverName(),
): Promise<DaemonLocation> {
  const given = socket ?? process.env[ENV.socket] ?? (await settingsFromConfigFile({}, process.env)).socket;
  if (given !== undefined) return { path: given, given: true };
  const standard = { path: DEFAULTS.socket };
  if (existsSync(DEFAULTS.socket)) return standard;
  try {
    const plugin = await findManagedPlugin(driver, dockerHost(), discoveryRoots().socketsDir, 5_000);
    return plugin?.address.kind === 'unix' ? { path: plugin.address.path, managed: driver } : standard;
  } catch (err) {
    if (err instanceof ManagedPluginDisabledError) throw err;
    return standard; // dockerd not there: the default socket's error says what to do
  }
}

/** Where the daemon answers, found once per command (ls asks it once per volume). */
let located: Promise<DaemonLocation> | undefined;

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
  located ??= locateDaemon(socket);
  const location = await located;
  const address: PluginAddress = { kind: 'unix', path: location.path };
  try {
    return await callLoopvol(address, method, body, timeoutMs);
  } catch (err) {
    const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code && UNREACHABLE.has(code)) {
      const managed = location.given ? '' : `, nor does dockerd run a managed plugin named ${driverName()}`;
      throw new Error(
        `no loopvol daemon answers on ${address.path} (${code})${managed}: is loopvol running? try: loopvol doctor${socket ? ` --socket ${address.path}` : ''}`,
      );
    }
    throw err;
  }
}

import type { PluginAddress } from '../protocol/client.js';
import { type DiscoveryRoots, findPlugin, type LocatedPlugin, PluginNotFoundError } from './discovery.js';
import { findManagedPlugin, ManagedPluginDisabledError } from './managed.js';

/**
 * Finds a plugin as dockerd does (sockets and spec files); failing that, asks dockerd at `docker`
 * for a managed plugin of that name, which has neither.
 */
export async function locatePlugin(
  name: string,
  roots: DiscoveryRoots,
  docker: PluginAddress,
  timeoutMs: number,
): Promise<LocatedPlugin> {
  try {
    return { address: await findPlugin(name, roots), hostPath: (p) => p };
  } catch (notFound) {
    if (!(notFound instanceof PluginNotFoundError)) throw notFound;
    let managed: LocatedPlugin | undefined;
    try {
      managed = await findManagedPlugin(name, docker, roots.socketsDir, timeoutMs);
    } catch (err) {
      if (err instanceof ManagedPluginDisabledError) throw err;
      throw new Error(
        `${notFound.message} (dockerd could not be asked for managed plugins: ${(err as Error).message})`,
      );
    }
    if (!managed) throw new Error(`${notFound.message}; dockerd has no managed volume plugin ${name} either`);
    return managed;
  }
}

import type { PluginAddress } from '../protocol/client.js';
import { type DiscoveryRoots, findPlugin, PluginNotFoundError } from './discovery.js';
import { findManagedPlugin, ManagedPluginDisabledError } from './managed.js';

/** Where to call a plugin, and how its mountpoints read on the host. */
export interface LocatedPlugin {
  address: PluginAddress;
  /** Maps a mountpoint the plugin answers to the same directory as the host sees it. */
  hostPath(mountpoint: string): string;
}

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

import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

import type { PluginAddress } from '../protocol/client.js';

/** Where to call a plugin, and how its mountpoints read on the host. */
export interface LocatedPlugin {
  address: PluginAddress;
  /** Maps a mountpoint the plugin answers to the same directory as the host sees it. */
  hostPath(mountpoint: string): string;
}

/** Docker's discovery roots; environment overrides exist so tests can use their own directories. */
export interface DiscoveryRoots {
  socketsDir: string;
  specDirs: string[];
}

export function discoveryRoots(env: NodeJS.ProcessEnv = process.env): DiscoveryRoots {
  return {
    socketsDir: env.LOOPVOL_PLUGIN_SOCKETS_DIR || '/run/docker/plugins',
    specDirs: (env.LOOPVOL_PLUGIN_SPEC_DIRS || '/etc/docker/plugins:/usr/lib/docker/plugins')
      .split(':')
      .filter(Boolean),
  };
}

/** Plugin names become path components: the same rule as Docker's (no slashes, no dot-dot). */
export const driverName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'volume driver name must be letters, digits, "_", "." and "-"')
  .max(255);

async function exists(path: string, kind: 'socket' | 'file'): Promise<boolean> {
  const info = await stat(path).catch(() => undefined);
  return kind === 'socket' ? Boolean(info?.isSocket()) : Boolean(info?.isFile());
}

/** No socket or spec file names the plugin. */
export class PluginNotFoundError extends Error {}

/** Parses a .spec file: one URL, unix:///path or tcp://host:port. */
export function parseSpecAddress(text: string, source: string): PluginAddress {
  const raw = text.trim();
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${source}: "${raw}" is not a unix:// or tcp:// address`);
  }
  if (url.protocol === 'unix:') return { kind: 'unix', path: decodeURIComponent(url.pathname) };
  if (url.protocol === 'tcp:' && url.hostname && url.port) {
    return { kind: 'tcp', host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) };
  }
  throw new Error(`${source}: "${raw}" is not a unix:// or tcp://host:port address`);
}

const jsonSpec = z.object({ Addr: z.string() });

/**
 * Finds a plugin the way dockerd does: NAME.sock or NAME/NAME.sock in the sockets directory,
 * then NAME.spec / NAME.json (or inside NAME/) in each spec directory.
 */
export async function findPlugin(name: string, roots: DiscoveryRoots): Promise<PluginAddress> {
  const valid = driverName.parse(name);
  for (const path of [
    join(roots.socketsDir, `${valid}.sock`),
    join(roots.socketsDir, valid, `${valid}.sock`),
  ]) {
    if (await exists(path, 'socket')) return { kind: 'unix', path };
  }
  for (const dir of roots.specDirs) {
    for (const base of [join(dir, valid), join(dir, valid, valid)]) {
      if (await exists(`${base}.spec`, 'file')) {
        return parseSpecAddress(await readFile(`${base}.spec`, 'utf8'), `${base}.spec`);
      }
      if (await exists(`${base}.json`, 'file')) {
        const parsed = jsonSpec.safeParse(JSON.parse(await readFile(`${base}.json`, 'utf8')));
        if (!parsed.success) throw new Error(`${base}.json: no "Addr" string`);
        return parseSpecAddress(parsed.data.Addr, `${base}.json`);
      }
    }
  }
  throw new PluginNotFoundError(
    `volume driver "${valid}" not found: no ${valid}.sock in ${roots.socketsDir} and no ${valid}.spec or ${valid}.json in ${roots.specDirs.join(', ')}; is the plugin running?`,
  );
}

import { join, relative } from 'node:path';
import { z } from 'zod';
import { getJson, type PluginAddress } from '../protocol/client.js';
import { type LocatedPlugin, parseSpecAddress } from './discovery.js';

export class ManagedPluginDisabledError extends Error {}

const pluginList = z.array(
  z.object({
    Id: z.string().regex(/^[0-9a-f]{64}$/),
    Name: z.string(),
    Enabled: z.boolean(),
    Config: z.object({
      Interface: z.object({
        Socket: z.string().regex(/^(?!\.\.?$)[^/]+$/, 'a file name'),
        // dockerd writes each type as "docker.volumedriver/1.0"; the Go struct has Capability.
        Types: z.array(z.union([z.string(), z.object({ Capability: z.string() })])).nullish(),
      }),
      PropagatedMount: z.string().nullish(),
    }),
  }),
);

const isVolumeDriver = (t: string | { Capability: string }) =>
  typeof t === 'string' ? /^docker\.volumedriver\//.test(t) : t.Capability === 'volumedriver';

/** Parses one dockerd API answer, naming the endpoint and the first mismatch on one line. */
function parseAnswer<T>(schema: z.ZodType<T>, answer: unknown, path: string): T {
  const result = schema.safeParse(answer);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new Error(
    `dockerd's ${path} answer is not as expected at ${issue?.path.join('.') || 'top level'}: ${issue?.message}`,
  );
}

const dockerInfo = z.object({ DockerRootDir: z.string().startsWith('/') });

/** dockerd's API address: DOCKER_HOST (unix:// or tcp://, as the docker CLI reads it), else the default. */
export function dockerHost(env: NodeJS.ProcessEnv = process.env): PluginAddress {
  return env.DOCKER_HOST
    ? parseSpecAddress(env.DOCKER_HOST, 'DOCKER_HOST')
    : { kind: 'unix', path: '/var/run/docker.sock' };
}

/**
 * Finds a managed (v2) volume plugin by name through dockerd's API. Such a plugin has no
 * NAME.sock: its socket is SOCKETS_DIR/<id>/<socket>, and its mountpoints are paths inside it
 * that dockerd translates; dvdcli must translate them the same way for Mesos, which runs on the
 * host: under the propagated mount they are DockerRootDir/plugins/<id>/propagated-mount/...
 */
export async function findManagedPlugin(
  name: string,
  docker: PluginAddress,
  socketsDir: string,
  timeoutMs: number,
): Promise<LocatedPlugin | undefined> {
  const plugins = parseAnswer(pluginList, await getJson(docker, '/plugins', timeoutMs), '/plugins');
  const wanted = name.includes(':') ? name : `${name}:latest`;
  const plugin = plugins.find(
    (p) => p.Name === wanted && (p.Config.Interface.Types ?? []).some(isVolumeDriver),
  );
  if (!plugin) return undefined;
  if (!plugin.Enabled) {
    throw new ManagedPluginDisabledError(
      `volume plugin ${plugin.Name} is installed but disabled: docker plugin enable ${plugin.Name}`,
    );
  }
  const { DockerRootDir } = parseAnswer(dockerInfo, await getJson(docker, '/info', timeoutMs), '/info');
  const pluginDir = join(DockerRootDir, 'plugins', plugin.Id);
  const propagated = plugin.Config.PropagatedMount;
  return {
    address: { kind: 'unix', path: join(socketsDir, plugin.Id, plugin.Config.Interface.Socket) },
    hostPath(inside) {
      if (!inside) return inside;
      const under = propagated ? relative(propagated, inside) : '..';
      return under.startsWith('..')
        ? join(pluginDir, 'rootfs', inside)
        : join(pluginDir, 'propagated-mount', under);
    },
  };
}

import type { Logger } from 'pino';
import { callPlugin } from '../protocol/client.js';
import type { DvdcliArgs } from './args.js';
import type { LocatedPlugin } from './discovery.js';

/** How long each call may take; dockerd allows 2 min for Create and Mount, 1 min for the rest. */
export interface Timeouts {
  slowMs: number;
  fastMs: number;
}

export function timeoutsFrom(env: NodeJS.ProcessEnv = process.env): Timeouts {
  const seconds = Number(env.DVDCLI_TIMEOUT);
  if (env.DVDCLI_TIMEOUT && Number.isFinite(seconds) && seconds > 0) {
    return { slowMs: seconds * 1000, fastMs: seconds * 1000 };
  }
  return { slowMs: 120_000, fastMs: 60_000 };
}

/**
 * Runs one dvdcli command in the Go dvdcli 0.2's call order and returns what it prints on stdout
 * (mountpoints as the host sees them). Activate comes first, as the Go dvdcli's plugin lookup sends it:
 *   mount:   Get → Create with the options (only if Get failed and not --explicitcreate) → Mount (no ID)
 *   unmount: Get → Unmount (no ID)            remove: Get → Remove
 *   path:    Get → Path only when Get's answer has no Mountpoint; printed only when there is one
 *   get:     Get → the volume's name           list: List → one name a line
 *   create:  Create with the options; prints nothing
 */
export async function runDvdcli(
  args: DvdcliArgs,
  { address, hostPath }: LocatedPlugin,
  timeouts: Timeouts,
  log: Logger,
): Promise<string> {
  const call = async (method: string, body: unknown, slow = false) => {
    log.info({ method, driver: args.driver, volume: args.volume || undefined }, 'calling plugin');
    return callPlugin(address, method, body, slow ? timeouts.slowMs : timeouts.fastMs);
  };
  const Name = args.volume;
  await call('Plugin.Activate', undefined);
  switch (args.command) {
    case 'mount': {
      const exists = await call('VolumeDriver.Get', { Name }).then(
        () => true,
        (err: Error) => {
          log.info({ reason: err.message }, 'volume not found by Get');
          return false;
        },
      );
      if (!exists) {
        if (args.explicitCreate) {
          throw new Error(`volume ${Name} does not exist and --explicitcreate forbids creating it`);
        }
        await call('VolumeDriver.Create', { Name, Opts: args.opts }, true);
      }
      const reply = await call('VolumeDriver.Mount', { Name }, true);
      if (typeof reply.Mountpoint !== 'string' || reply.Mountpoint === '') {
        throw new Error('VolumeDriver.Mount: plugin returned no Mountpoint');
      }
      return hostPath(reply.Mountpoint);
    }
    case 'unmount':
      await call('VolumeDriver.Get', { Name });
      await call('VolumeDriver.Unmount', { Name });
      return '';
    case 'create':
      await call('VolumeDriver.Create', { Name, Opts: args.opts }, true);
      return '';
    case 'remove':
      await call('VolumeDriver.Get', { Name });
      await call('VolumeDriver.Remove', { Name });
      return '';
    case 'path': {
      const known = volumeOf(await call('VolumeDriver.Get', { Name })).Mountpoint;
      const mountPoint = known || String((await call('VolumeDriver.Path', { Name })).Mountpoint ?? '');
      return mountPoint ? hostPath(mountPoint) : '';
    }
    case 'get': {
      const volume = volumeOf(await call('VolumeDriver.Get', { Name }));
      return args.json ? JSON.stringify(volume) : (volume.Name ?? Name);
    }
    case 'list': {
      const volumes = ((await call('VolumeDriver.List', {})).Volumes ?? []) as { Name?: string }[];
      return args.json ? JSON.stringify(volumes) : volumes.map((v) => v.Name ?? '').join('\n');
    }
    case 'version':
      throw new Error('version asks no plugin');
  }
}

/** The volume in a Get answer; the plugin's own fields are kept as they are (for --json). */
function volumeOf(reply: Record<string, unknown>): { Name?: string; Mountpoint?: string } {
  const volume = reply.Volume;
  return typeof volume === 'object' && volume !== null
    ? (volume as { Name?: string; Mountpoint?: string })
    : {};
}

import type { Logger } from 'pino';
import { callPlugin } from '../protocol/client.js';
import type { DvdcliArgs } from './args.js';
import type { LocatedPlugin } from './locate.js';

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
 * Runs one dvdcli command in dvdcli's call order and returns what goes to stdout (mountpoints as
 * the host sees them):
 *   mount:   Activate → Get → Create (only if Get failed and not --explicitcreate) → Mount (no ID)
 *   unmount: Activate → Get → Unmount (no ID)
 *   others:  Activate → the one call.
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
      await call('VolumeDriver.Remove', { Name });
      return '';
    case 'path':
      return hostPath(String((await call('VolumeDriver.Path', { Name })).Mountpoint ?? ''));
    case 'get':
      return JSON.stringify((await call('VolumeDriver.Get', { Name })).Volume ?? {});
    case 'list':
      return JSON.stringify((await call('VolumeDriver.List', {})).Volumes ?? []);
  }
}

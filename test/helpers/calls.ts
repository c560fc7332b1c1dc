import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { PluginProcess } from './plugin.js';

/** SHA-256 in hex: how tests compare what was written with what is read back. */
export const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** Calls the plugin and expects HTTP 200 (else fails naming the method and the reply); the body. */
export async function ok(p: PluginProcess, method: string, body: object): Promise<Record<string, unknown>> {
  const reply = await p.call(method, body);
  expect(reply.status, `${method}: ${reply.raw}`).toBe(200);
  return reply.body as Record<string, unknown>;
}

/** Create then Mount for holder `id`, as dvdcli mount and docker run --volume-driver do: the mountpoint. */
export async function createAndMount(
  p: PluginProcess,
  name: string,
  opts: object,
  id: string,
): Promise<string> {
  await ok(p, 'VolumeDriver.Create', { Name: name, Opts: opts });
  return String((await ok(p, 'VolumeDriver.Mount', { Name: name, ID: id })).Mountpoint);
}

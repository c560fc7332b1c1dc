// The client side of the volume plugin protocol, for dvdcli, the operator commands and the tests.
import { request } from 'node:http';
import type { z } from 'zod';
import { endpoints, type Method, type ReplyOf, type RequestOf } from './wire.js';

/** Where a volume plugin listens. */
export type PluginAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** A plugin answered with an error (non-200 or a non-empty Err). */
export class PluginError extends Error {}

/** POSTs `payload` to /Method and collects the raw answer; transport errors and timeouts reject. */
export function postRaw(
  address: PluginAddress,
  method: string,
  payload: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; raw: string }> {
  return exchange(address, 'POST', `/${method}`, method, payload, headers, timeoutMs);
}

/** GETs `path` (dockerd's API) and parses the JSON answer; anything but 200 rejects. */
export async function getJson(address: PluginAddress, path: string, timeoutMs: number): Promise<unknown> {
  const { status, raw } = await exchange(address, 'GET', path, `GET ${path}`, '', {}, timeoutMs);
  if (status !== 200) throw new Error(`GET ${path}: answered HTTP ${status}: ${raw.trim()}`);
  return JSON.parse(raw);
}

/** One HTTP request over a Unix socket or TCP; `label` names it in errors. */
function exchange(
  address: PluginAddress,
  httpMethod: 'GET' | 'POST',
  path: string,
  label: string,
  payload: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; raw: string }> {
  const target =
    address.kind === 'unix' ? { socketPath: address.path } : { host: address.host, port: address.port };
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target,
        path,
        method: httpMethod,
        headers: { ...headers, 'Content-Length': Buffer.byteLength(payload) },
        timeout: timeoutMs,
      },
      (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          raw += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, raw }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${label}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) =>
      // The cause keeps the errno code (ENOENT, ECONNREFUSED) for callers that explain it.
      reject(err.message.startsWith(label) ? err : new Error(`${label}: ${err.message}`, { cause: err })),
    );
    req.end(payload);
  });
}

/**
 * One protocol call as dockerd makes it. Resolves the parsed answer; rejects with the plugin's
 * Err, a transport error, or a timeout.
 */
export async function callPlugin(
  address: PluginAddress,
  method: string,
  body: unknown,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  const mediaType = 'application/vnd.docker.plugins.v1.2+json';
  const { status, raw } = await postRaw(
    address,
    method,
    body === undefined ? '' : JSON.stringify(body),
    { Accept: mediaType, 'Content-Type': mediaType },
    timeoutMs,
  );
  let parsed: Record<string, unknown>;
  try {
    parsed = raw.trim() === '' ? {} : (JSON.parse(raw) as Record<string, unknown>);
  } catch {
    throw new PluginError(`${method}: plugin answered ${status} with a body that is not JSON`);
  }
  const err = typeof parsed.Err === 'string' ? parsed.Err : '';
  if (status !== 200 || err) throw new PluginError(`${method}: ${err || `plugin answered HTTP ${status}`}`);
  return parsed;
}

/** The endpoints seen by method, so that indexing with a method keeps its reply's type. */
const replies: { [M in Method]: { reply: z.ZodType<ReplyOf<M>> } } = endpoints;

/**
 * One call to a loopvol daemon, typed by its endpoint (wire.ts). The daemon may run another
 * version, so its answer is checked against the endpoint's reply: what does not fit is refused,
 * naming the endpoint and the field, instead of being misread. The answer is handed on as sent.
 */
export async function callLoopvol<M extends Method>(
  address: PluginAddress,
  method: M,
  body: RequestOf<M>,
  timeoutMs: number,
): Promise<ReplyOf<M>> {
  const reply = await callPlugin(address, method, body, timeoutMs);
  const schema = replies[method].reply;
  if (fits(schema, reply)) return reply;
  const issue = schema.safeParse(reply).error?.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw new PluginError(
    `${method}: the daemon's answer is not what this loopvol expects (${where}${issue?.message ?? 'invalid'}): is the daemon another version? Run the same version of loopvol as the daemon`,
  );
}

/** Checks without copying: a parse would drop the fields a newer daemon added and reorder the rest. */
function fits<T>(schema: z.ZodType<T>, value: unknown): value is T {
  return schema.safeParse(value).success;
}

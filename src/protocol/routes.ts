import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { VolumeError } from '../core/errors.js';
import type { Driver, Maintenance, RequestObserver } from './driver.js';
import { httpStatus } from './errors.js';
import { describeIssue, parseBody } from './schemas.js';
import { endpoints, type Method, type ParsedRequestOf, type ReplyOf } from './wire.js';

/** Largest request body accepted; real requests are a few hundred bytes. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** A failure with a status and the message sent as `Err`. */
class ProtocolError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** An endpoint's work: its parsed request in, its reply out (wire.ts; tsc holds it to the shape). */
type Served<M extends Method> = (request: ParsedRequestOf<M>, log: Logger) => Promise<ReplyOf<M>>;
type Routes = { [M in Method]?: Served<M> };
type Handler = (body: unknown, log: Logger) => Promise<object>;

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const result = schema.safeParse(body);
  if (!result.success) throw new ProtocolError(400, describeIssue(result.error, body));
  return result.data;
}

/** What the app serves besides the VolumeDriver protocol; every field is optional. */
export interface AppOptions {
  /** Serves Loopvol.Fsck and Loopvol.Gc. */
  maintenance?: Maintenance;
  /** Told of every request answered (metrics). */
  observe?: RequestObserver;
}

/** loopvol's maintenance endpoints, served when the daemon has the rooms behind them. */
function maintenanceRoutes(maintenance: Maintenance): Routes {
  return {
    'Loopvol.Fsck': async ({ Name, Repair }, log) => ({ Fsck: await maintenance.fsck(Name, Repair, log) }),
    'Loopvol.Gc': async ({ DryRun }, log) => ({ Findings: await maintenance.gc(DryRun, log) }),
    'Loopvol.SnapshotCreate': async ({ Name, Snapshot, Force }, log) => ({
      Snapshot: await maintenance.snapshot(Name, Snapshot, Force, log),
    }),
    'Loopvol.SnapshotList': async ({ Name }) => ({ Snapshots: await maintenance.snapshots(Name) }),
    'Loopvol.Backup': async ({ Name }, log) => ({ Backup: await maintenance.backup(Name, log) }),
    'Loopvol.BackupVerify': async ({ Name }, log) => ({
      Verify: await maintenance.verifyBackup(Name, log),
    }),
    'Loopvol.Cluster': async () => ({ Volumes: await maintenance.clusterVolumes() }),
    'Loopvol.Backups': async ({ Name }) => ({ Backups: await maintenance.backups(Name) }),
    'Loopvol.SnapshotRemove': async ({ Name, Snapshot }, log) => {
      if (Snapshot === undefined) throw new ProtocolError(400, 'Snapshot is required and must be a string');
      await maintenance.removeSnapshot(Name, Snapshot, log);
      return {};
    },
  };
}

function driverRoutes(driver: Driver): Routes {
  return {
    'Plugin.Activate': async () => ({ Implements: ['VolumeDriver'] }),
    'VolumeDriver.Capabilities': async () => ({ Capabilities: { Scope: 'local' } }),
    'VolumeDriver.Create': async ({ Name, Opts }, log) => {
      await driver.create(Name, Opts, log);
      return {};
    },
    'VolumeDriver.Remove': async ({ Name }, log) => {
      await driver.remove(Name, log);
      return {};
    },
    'VolumeDriver.Mount': async ({ Name, ID }, log) => ({ Mountpoint: await driver.mount(Name, ID, log) }),
    'VolumeDriver.Unmount': async ({ Name, ID }, log) => {
      await driver.unmount(Name, ID, log);
      return {};
    },
    'VolumeDriver.Path': async ({ Name }) => ({ Mountpoint: await driver.path(Name) }),
    'VolumeDriver.Get': async ({ Name }) => ({ Volume: await driver.get(Name) }),
    'VolumeDriver.List': async () => ({ Volumes: await driver.list() }),
    // Not part of Docker's protocol: dockerd never calls it; `loopvol resize` does.
    'Loopvol.Resize': async ({ Name, Size }, log) => {
      await driver.resize(Name, Size, log);
      return {};
    },
  };
}

/** The endpoints served, by method: each parses its body with its wire request, then does its work. */
function handlers(driver: Driver, maintenance: Maintenance | undefined): Record<string, Handler> {
  const routes: Routes = { ...(maintenance ? maintenanceRoutes(maintenance) : {}), ...driverRoutes(driver) };
  const served: Record<string, Handler> = {};
  for (const [method, work] of Object.entries(routes) as [Method, Served<Method>][]) {
    const request = endpoints[method].request;
    served[method] = (body, log) => work(parse(request, body), log);
  }
  return served;
}

/** The volume name a body mentions, for the log line, whatever else is wrong with it. */
function nameOf(body: unknown): string | undefined {
  const name = (body as { Name?: unknown } | null)?.Name;
  return typeof name === 'string' ? name.slice(0, 300) : undefined;
}

const CONTENT_TYPE = 'application/vnd.docker.plugins.v1+json';

function reply(res: ServerResponse, status: number, payload: object, close = false): void {
  const body = JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': CONTENT_TYPE,
    'content-length': Buffer.byteLength(body),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(body);
}

/**
 * Reads a request body up to MAX_BODY_BYTES; undefined when it is larger (the caller answers 413
 * and closes the connection, so the rest is never read) or the stream broke.
 */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      resolve(undefined);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', () => resolve(undefined));
  });
}

/**
 * The HTTP side of the VolumeDriver protocol: POST /<Method>, JSON in and out, `{"Err": ...}` on
 * failure. Every answer carries a JSON body; internals (stacks, errno objects) never leave the
 * process. Plain node:http, no framework: nine POST endpoints need no router, and a framework's
 * per-request work was most of a Get's tail latency (see README, Performance).
 */
export function createApp(driver: Driver, log: Logger, options: AppOptions = {}): RequestListener {
  const routes = handlers(driver, options.maintenance);
  const known = Object.keys(routes).join(', ');

  const serve = async (req: IncomingMessage, res: ServerResponse, method: string): Promise<void> => {
    const started = process.hrtime.bigint();
    const handler = Object.hasOwn(routes, method) ? routes[method] : undefined;
    const raw = await readBody(req);
    if (raw === undefined) {
      if (req.readableAborted) return;
      log.warn({ method, limit: MAX_BODY_BYTES }, 'request rejected: body too large');
      reply(res, 413, { Err: `request body is over ${MAX_BODY_BYTES} bytes` }, true);
      return;
    }
    let body: unknown;
    let invalidJson = false;
    try {
      body = parseBody(raw);
    } catch {
      invalidJson = true;
    }
    // One child logger a request: pino's child() is most of a Get's own CPU time.
    const reqLog = log.child({ req: randomUUID().slice(0, 8), method, volume: nameOf(body) });
    let status = 200;
    let payload: object;
    try {
      if (!handler) throw new ProtocolError(404, `unknown method ${method}: loopvol implements ${known}`);
      if (invalidJson) throw new ProtocolError(400, 'request body is not valid JSON');
      payload = await handler(body, reqLog);
    } catch (err) {
      ({ status, payload } = toErrorReply(err, reqLog));
    }
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    // Unknown methods are not counted: their names come from the client, unbounded.
    if (handler) options.observe?.(method, durationMs / 1000, 'Err' in payload);
    const outcome = 'Err' in payload ? { outcome: 'error', status, error: payload.Err } : { outcome: 'ok' };
    reqLog[status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info']({ durationMs, ...outcome }, 'request');
    reply(res, status, payload);
  };

  return (req, res) => {
    // The method is the path's one segment, taken as sent: names are ASCII, nothing to decode.
    const method = req.method === 'POST' ? /^\/([^/?#]+)(?:\?.*)?$/.exec(req.url ?? '')?.[1] : undefined;
    if (method === undefined) {
      req.resume();
      reply(res, 404, { Err: 'not found: the volume plugin protocol is POST /<Method>' });
      return;
    }
    serve(req, res, method).catch((err: Error) => {
      log.error({ err, method }, 'request failed before an answer');
      if (!res.headersSent)
        reply(res, 500, { Err: 'internal error in loopvol: see the plugin log for details' });
    });
  };
}

function toErrorReply(err: unknown, log: Logger): { status: number; payload: { Err: string } } {
  if (err instanceof ProtocolError) return { status: err.status, payload: { Err: err.message } };
  if (err instanceof VolumeError) return { status: httpStatus(err.kind), payload: { Err: err.message } };
  log.error({ err }, 'unexpected failure');
  return { status: 500, payload: { Err: 'internal error in loopvol: see the plugin log for details' } };
}

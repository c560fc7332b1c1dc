import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { VolumeError } from '../core/errors.js';
import type { Driver, Maintenance, RequestObserver } from './driver.js';
import {
  backupsRequest,
  createRequest,
  describeIssue,
  fsckRequest,
  gcRequest,
  mountRequest,
  nameRequest,
  parseBody,
  resizeRequest,
  snapshotRequest,
} from './schemas.js';

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

/** The endpoints: each validates its body, calls the driver and shapes the answer. */
function handlers(driver: Driver, maintenance: Maintenance | undefined): Record<string, Handler> {
  const extensions: Record<string, Handler> = maintenance
    ? {
        'Loopvol.Fsck': async (body, log) => {
          const { Name, Repair } = parse(fsckRequest, body);
          return { Fsck: await maintenance.fsck(Name, Repair, log) };
        },
        'Loopvol.Gc': async (body, log) => ({
          Findings: await maintenance.gc(parse(gcRequest, body).DryRun, log),
        }),
        'Loopvol.SnapshotCreate': async (body, log) => {
          const { Name, Snapshot, Force } = parse(snapshotRequest, body);
          return { Snapshot: await maintenance.snapshot(Name, Snapshot, Force, log) };
        },
        'Loopvol.SnapshotList': async (body) => ({
          Snapshots: await maintenance.snapshots(parse(snapshotRequest, body).Name),
        }),
        'Loopvol.Backup': async (body, log) => ({
          Backup: await maintenance.backup(parse(nameRequest, body).Name, log),
        }),
        'Loopvol.Cluster': async () => ({ Volumes: await maintenance.clusterVolumes() }),
        'Loopvol.Backups': async (body) => ({
          Backups: await maintenance.backups(parse(backupsRequest, body).Name),
        }),
        'Loopvol.SnapshotRemove': async (body, log) => {
          const { Name, Snapshot } = parse(snapshotRequest, body);
          if (Snapshot === undefined)
            throw new ProtocolError(400, 'Snapshot is required and must be a string');
          await maintenance.removeSnapshot(Name, Snapshot, log);
          return {};
        },
      }
    : {};
  return {
    ...extensions,
    'Plugin.Activate': async () => ({ Implements: ['VolumeDriver'] }),
    'VolumeDriver.Capabilities': async () => ({ Capabilities: { Scope: 'local' } }),
    'VolumeDriver.Create': async (body, log) => {
      const { Name, Opts } = parse(createRequest, body);
      await driver.create(Name, Opts, log);
      return {};
    },
    'VolumeDriver.Remove': async (body, log) => {
      await driver.remove(parse(nameRequest, body).Name, log);
      return {};
    },
    'VolumeDriver.Mount': async (body, log) => {
      const { Name, ID } = parse(mountRequest, body);
      return { Mountpoint: await driver.mount(Name, ID, log) };
    },
    'VolumeDriver.Unmount': async (body, log) => {
      const { Name, ID } = parse(mountRequest, body);
      await driver.unmount(Name, ID, log);
      return {};
    },
    'VolumeDriver.Path': async (body) => ({ Mountpoint: await driver.path(parse(nameRequest, body).Name) }),
    'VolumeDriver.Get': async (body) => ({ Volume: await driver.get(parse(nameRequest, body).Name) }),
    'VolumeDriver.List': async () => ({ Volumes: await driver.list() }),
    // Not part of Docker's protocol: dockerd never calls it; `loopvol resize` does.
    'Loopvol.Resize': async (body, log) => {
      const { Name, Size } = parse(resizeRequest, body);
      await driver.resize(Name, Size, log);
      return {};
    },
  };
}

/** The volume name a body mentions, for the log line, whatever else is wrong with it. */
function nameOf(body: unknown): string | undefined {
  const name = (body as { Name?: unknown } | null)?.Name;
  return typeof name === 'string' ? name.slice(0, 300) : undefined;
}

/**
 * The HTTP side of the VolumeDriver protocol: POST /<Method>, JSON in and out, `{"Err": ...}` on
 * failure. Every answer carries a JSON body; internals (stacks, errno objects) never leave the process.
 */
export function createApp(driver: Driver, log: Logger, options: AppOptions = {}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const routes = handlers(driver, options.maintenance);
  const known = Object.keys(routes).join(', ');

  app.use(express.raw({ type: () => true, limit: MAX_BODY_BYTES }));

  app.post('/:method', async (req: Request, res: Response) => {
    const method = String(req.params.method);
    const started = process.hrtime.bigint();
    const handler = Object.hasOwn(routes, method) ? routes[method] : undefined;
    let reqLog = log.child({ req: randomUUID().slice(0, 8), method });
    let status = 200;
    let payload: object;
    try {
      if (!handler) throw new ProtocolError(404, `unknown method ${method}: loopvol implements ${known}`);
      let body: unknown;
      try {
        body = parseBody(Buffer.isBuffer(req.body) ? req.body : undefined);
      } catch {
        throw new ProtocolError(400, 'request body is not valid JSON');
      }
      const volume = nameOf(body);
      if (volume !== undefined) reqLog = reqLog.child({ volume });
      payload = await handler(body, reqLog);
    } catch (err) {
      ({ status, payload } = toErrorReply(err, reqLog));
    }
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    // Unknown methods are not counted: their names come from the client, unbounded.
    if (handler) options.observe?.(method, durationMs / 1000, 'Err' in payload);
    const outcome = 'Err' in payload ? { outcome: 'error', status, error: payload.Err } : { outcome: 'ok' };
    reqLog[status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info']({ durationMs, ...outcome }, 'request');
    res.status(status).type('application/vnd.docker.plugins.v1+json').send(JSON.stringify(payload));
  });

  // Anything else: wrong verb or path, a body over the limit, a broken stream.
  app.use((_req: Request, res: Response) => {
    res.status(404).json({ Err: 'not found: the volume plugin protocol is POST /<Method>' });
  });
  app.use(
    (err: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
      const tooLarge = err.type === 'entity.too.large';
      log.warn({ err: err.message }, 'request rejected before routing');
      res
        .status(tooLarge ? 413 : (err.status ?? 400))
        .json({ Err: tooLarge ? `request body is over ${MAX_BODY_BYTES} bytes` : 'malformed request' });
    },
  );
  return app;
}

function toErrorReply(err: unknown, log: Logger): { status: number; payload: { Err: string } } {
  if (err instanceof ProtocolError) return { status: err.status, payload: { Err: err.message } };
  if (err instanceof VolumeError) return { status: err.status, payload: { Err: err.message } };
  log.error({ err }, 'unexpected failure');
  return { status: 500, payload: { Err: 'internal error in loopvol: see the plugin log for details' } };
}

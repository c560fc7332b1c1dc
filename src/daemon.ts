import { createServer } from 'node:http';
import { pino } from 'pino';
import { DiskBackend } from './backend/disk.js';
import { LoopBackend } from './backend/loop.js';
import { SparePool } from './backend/spares.js';
import type { Config } from './config.js';
import { MIN_SIZE_BYTES } from './core/options.js';
import { formatSize } from './core/size.js';
import { createApp } from './protocol/routes.js';
import { closeUnix, listenUnix } from './server/unix-socket.js';
import { Layout } from './state/layout.js';
import { Store } from './state/store.js';
import { selectKernelOps } from './system/kernel-ops.js';
import { VolumeService } from './volume/service.js';

/**
 * Runs the plugin until SIGTERM/SIGINT: check the data root (fast), listen (dockerd dials a
 * managed plugin within seconds), reconcile after; requests that arrive meanwhile wait for it.
 */
export async function serve(config: Config): Promise<void> {
  const log = pino({ level: config.logLevel, base: { pid: process.pid } });
  if (config.defaultSizeBytes < MIN_SIZE_BYTES[config.defaultFs]) {
    throw new Error(
      `--default-size ${formatSize(config.defaultSizeBytes)} is below the ${config.defaultFs} minimum of ${formatSize(MIN_SIZE_BYTES[config.defaultFs])}`,
    );
  }
  const { ops: kernel, fallback } = selectKernelOps();
  if (fallback)
    log.warn({ reason: fallback }, 'using losetup, mount and umount processes instead of system calls');
  const layout = new Layout(config.dataRoot, config.mountRoot);
  const spares = new SparePool(
    layout.spares,
    config.spares,
    { fs: config.defaultFs, sizeBytes: config.defaultSizeBytes },
    log,
  );
  const service = new VolumeService(
    new Store(layout),
    { loop: new LoopBackend(kernel, { spares }), disk: new DiskBackend(config.diskPool, kernel) },
    { sizeBytes: config.defaultSizeBytes, fs: config.defaultFs },
    log,
    config.overcommit,
  );
  try {
    await service.prepare();
  } catch (err) {
    throw new Error(`cannot use data root ${config.dataRoot}: ${(err as Error).message}`);
  }
  const server = createServer(createApp(service, log));
  server.keepAliveTimeout = 60_000;
  await listenUnix(server, config.socket);
  log.info(
    {
      socket: config.socket,
      dataRoot: config.dataRoot,
      mountRoot: config.mountRoot,
      diskPool: config.diskPool,
    },
    'listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: finishing requests in flight; mounted volumes stay mounted');
    closeUnix(server, config.socket)
      .then(() => service.idle())
      .then(
        () => {
          log.info('stopped');
          process.exit(0);
        },
        (err) => {
          log.error({ err }, 'unclean stop');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await service.start();
  } catch (err) {
    log.fatal(
      { err, dataRoot: config.dataRoot },
      'cannot start: check that the data root is writable by root',
    );
    await closeUnix(server, config.socket, 0);
    process.exit(1);
  }
}

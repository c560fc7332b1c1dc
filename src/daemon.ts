import { createServer } from 'node:http';
import { release } from 'node:os';
import { DiskBackend } from './backend/disk.js';
import { LoopBackend } from './backend/loop.js';
import { SparePool } from './backend/spares.js';
import type { Config } from './config/resolve.js';
import { lateClones } from './core/clone.js';
import { MIN_SIZE_BYTES } from './core/options.js';
import { formatSize } from './core/size.js';
import { loadMasterKey, VolumeKeys } from './encryption/keys.js';
import { type Extensions, wireExtensions } from './extensions.js';
import { createApp } from './protocol/routes.js';
import { createLogger } from './server/logger.js';
import { closeUnix, listenUnix } from './server/unix-socket.js';
import { Layout } from './state/layout.js';
import { Store } from './state/store.js';
import { LOOP_ATTACH_LABEL, selectKernelOps } from './system/kernel-ops.js';
import { loadLibc } from './system/libc.js';
import { VolumeService } from './volume/service.js';

/**
 * Runs the plugin until SIGTERM/SIGINT: check the data root (fast), listen (dockerd dials a
 * managed plugin within seconds), reconcile after; requests that arrive meanwhile wait for it.
 */
export async function serve(config: Config): Promise<void> {
  const log = createLogger(config.logLevel, config.logFormat);
  if (config.defaultSizeBytes < MIN_SIZE_BYTES[config.defaultFs]) {
    throw new Error(
      `--default-size ${formatSize(config.defaultSizeBytes)} is below the ${config.defaultFs} minimum of ${formatSize(MIN_SIZE_BYTES[config.defaultFs])}`,
    );
  }
  const { ops: kernel, fallback, loopAttachReason } = await selectKernelOps();
  if (fallback)
    log.warn({ reason: fallback }, 'using losetup, mount and umount processes instead of system calls');
  log.info(
    { loopAttach: kernel.loopAttach, reason: loopAttachReason, kernel: release() },
    `loop devices attached with ${LOOP_ATTACH_LABEL[kernel.loopAttach]}`,
  );
  // A key file others could read is refused before dockerd ever sees a socket.
  const keys = new VolumeKeys(config.keyFile ? await loadMasterKey(config.keyFile) : undefined);
  const layout = new Layout(config.dataRoot, config.mountRoot);
  // The FFI also serves ext4 templates (SEEK_DATA); with the tools, ext4 gets spares instead.
  const libc = kernel.via === 'syscalls' ? await loadLibc() : undefined;
  const spares = new SparePool(
    layout.spares,
    config.spares,
    { fs: config.defaultFs, sizeBytes: config.defaultSizeBytes },
    log,
    libc instanceof Error ? undefined : libc,
  );
  const store = new Store(layout);
  const disks = new DiskBackend(config.diskPool, kernel, log);
  // A pool disk without a stable name is refused before dockerd ever sees a socket.
  await disks.startup();
  // The ZooKeeper client is loaded only in a cluster: start-up (restart time) stays short without it.
  const cluster = config.cluster
    ? await (await import('./cluster/cluster.js')).Cluster.create(config.cluster, layout, log)
    : undefined;
  // The service and the rooms beside it need each other: a Create from= copies through the
  // snapshot and backup rooms, and those rooms work on volumes under the service's locks. So the
  // service is built with forwarders to `rooms`, which is set right after it; they are first
  // called by start() (and requests, which wait for it), both later than that.
  let rooms: Extensions | undefined;
  const wired = (): Extensions => {
    if (!rooms) throw new Error('the rooms beside the volume service are not wired yet');
    return rooms;
  };
  const service = new VolumeService({
    store,
    backends: { loop: new LoopBackend(kernel, { spares }), disk: disks },
    defaults: {
      sizeBytes: config.defaultSizeBytes,
      fs: config.defaultFs,
      policy: config.optionPolicy,
      encrypt: config.encryptDefault,
    },
    keys,
    log,
    overcommit: config.overcommit,
    cluster,
    clones: lateClones(() => wired().clones),
    statusExtras: (name) => wired().statusExtras(name),
    startUp: () => wired().startUp(),
  });
  try {
    await service.prepare();
  } catch (err) {
    throw new Error(`cannot use data root ${config.dataRoot}: ${(err as Error).message}`);
  }
  rooms = wireExtensions(store, service, kernel, config, cluster, log);
  const { maintenance, collector, backups } = rooms;
  // prom-client is loaded only when metrics are asked for: start-up stays short without them.
  const metrics = config.metricsListen
    ? (await import('./metrics/registry.js')).createMetrics(service, backups)
    : undefined;
  const server = createServer(createApp(service, log, { maintenance, observe: metrics?.observe }));
  server.keepAliveTimeout = 60_000;
  await listenUnix(server, config.socket);
  log.info(
    {
      socket: config.socket,
      dataRoot: config.dataRoot,
      mountRoot: config.mountRoot,
      diskPool: config.diskPool,
      kernelOps: kernel.via,
      ...(config.configFile ? { configFile: config.configFile } : {}),
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

  if (metrics && config.metricsListen) {
    const { serveMetrics } = await import('./metrics/server.js');
    const at = config.metricsListen;
    try {
      const metricsServer = await serveMetrics(metrics.registry, at, log);
      metricsServer.unref();
      log.info(
        { metrics: `http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}/metrics` },
        'serving metrics',
      );
    } catch (err) {
      log.error(
        { err: (err as Error).message, metricsListen: at },
        'cannot serve metrics there (address in use?); serving volumes without them',
      );
    }
  }

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
  if (backups) {
    backups.schedule(log);
    void backups.checkAtStart(log);
  }
  // Start-up reconciled the volumes; gc then cleans what interrupted work left outside them.
  await collector
    .collect(false, log.child({ gc: 'start-up' }))
    .catch((err: Error) =>
      log.error({ err: err.message }, 'start-up gc failed: run "loopvol gc --dry-run" to see what is left'),
    );
}

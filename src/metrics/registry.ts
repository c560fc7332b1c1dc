import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Backups } from '../backup/backups.js';
import type { BackupStatus } from '../backup/repository.js';
import type { RequestObserver } from '../protocol/driver.js';
import { filesystemUsage } from '../system/fsstat.js';
import type { VolumePort } from '../volume/port.js';

/** Buckets from 0.5 ms (Get, Path) to 30 s (a large preallocated Create, a resize). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * loopvol's Prometheus metrics. Request figures are counted as requests are answered; the
 * volume and space gauges are computed at scrape time from the service (one stat per image, one
 * read of mountinfo), so nothing runs between scrapes.
 */
export function createMetrics(
  service: VolumePort,
  backups?: Backups,
): { registry: Registry; observe: RequestObserver } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'loopvol_' });

  const duration = new Histogram({
    name: 'loopvol_request_duration_seconds',
    help: 'Time to answer a plugin request, by method (its _count is the number of requests)',
    labelNames: ['method'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'loopvol_request_errors_total',
    help: 'Plugin requests answered with an error, by method',
    labelNames: ['method'],
    registers: [registry],
  });

  // The gauges of one scrape share one look at the service.
  let last: { at: number; figures: ReturnType<typeof look> } | undefined;
  const look = async () => {
    const figures = await service.figures(true);
    const mounted = (await service.list()).filter((v) => v.Mountpoint !== '').length;
    const encrypted = service.names().filter((name) => service.specOf(name)?.encrypt).length;
    return { ...figures, mounted, encrypted, host: filesystemUsage(figures.dataRoot) };
  };
  const current = () => {
    if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), figures: look() };
    return last.figures;
  };
  const gauge = (name: string, help: string, value: (f: Awaited<ReturnType<typeof look>>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(value(await current()));
      },
    });
  gauge('loopvol_volumes', 'Volumes served', (f) => f.volumes);
  gauge('loopvol_volumes_mounted', 'Volumes mounted now', (f) => f.mounted);
  gauge('loopvol_volumes_encrypted', 'Volumes encrypted at rest (fscrypt)', (f) => f.encrypted);
  new Gauge({
    name: 'loopvol_volume_encrypted',
    help: 'Per volume: 1 when it is encrypted at rest (fscrypt), 0 when it is not',
    labelNames: ['volume'],
    registers: [registry],
    collect() {
      this.reset();
      for (const volume of service.names())
        this.set({ volume }, Number(service.specOf(volume)?.encrypt === true));
    },
  });
  gauge('loopvol_provisioned_bytes', 'Sum of the sizes of loop volumes', (f) => f.provisionedBytes);
  gauge(
    'loopvol_allocated_bytes',
    "Bytes the loop volumes' images occupy on the host",
    (f) => f.allocatedBytes,
  );
  gauge('loopvol_data_root_free_bytes', "Free bytes on the data root's filesystem", (f) => f.host.freeBytes);
  gauge('loopvol_data_root_size_bytes', "Size of the data root's filesystem", (f) => f.host.totalBytes);

  if (backups) {
    /** A gauge per volume from its backup status; no sample where `value` has none. */
    const backupGauge = (name: string, help: string, value: (s: BackupStatus) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['volume'],
        registers: [registry],
        collect() {
          this.reset();
          for (const volume of service.names()) {
            const v = value(backups.status(volume));
            if (v !== undefined) this.set({ volume }, v);
          }
        },
      });
    const seconds = (at: string | undefined) => (at ? Date.parse(at) / 1000 : undefined);
    backupGauge(
      'loopvol_backup_last_success_timestamp_seconds',
      'When the last backup of a volume succeeded',
      (s) => seconds(s.lastSuccess?.time),
    );
    backupGauge(
      'loopvol_backup_last_failure_timestamp_seconds',
      'When the last backup of a volume failed',
      (s) => seconds(s.lastFailure?.time),
    );
    backupGauge(
      'loopvol_backup_verify_last_success_timestamp_seconds',
      "When a volume's latest backup last restored and checked clean (loopvol backup verify)",
      (s) => seconds(s.lastVerifySuccess?.time),
    );
    backupGauge(
      'loopvol_backup_verify_failed',
      "1 when the last check of a volume's latest backup failed, 0 when it passed",
      (s) => (s.lastVerify ? Number(!s.lastVerify.ok) : undefined),
    );
  }

  return {
    registry,
    observe: (method, seconds, failed) => {
      duration.observe({ method }, seconds);
      if (failed) errors.inc({ method });
    },
  };
}

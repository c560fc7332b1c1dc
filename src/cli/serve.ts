import { parseArgs } from 'node:util';
import { resolveConfig } from '../config.js';
import { serve } from '../daemon.js';

export const SERVE_USAGE = `usage: loopvol serve [--socket PATH] [--data-root DIR] [--default-size SIZE] [--default-fs ext4|xfs] [--log-level LEVEL] [--disk-pool DEVS] [--mount-root DIR] [--spares N] [--overcommit RATIO] [--cluster zk://HOST:PORT/PATH ...]

  --socket PATH        Unix socket to serve (env LOOPVOL_SOCKET, default /run/docker/plugins/loopvol.sock)
  --data-root DIR      where images, metadata and mountpoints live (env LOOPVOL_DATA_ROOT, default /var/lib/loopvol)
  --mount-root DIR     mount volumes at DIR/<name> instead (env LOOPVOL_MOUNT_ROOT; the managed plugin's propagated mount)
  --default-size SIZE  size when Create names none (env LOOPVOL_DEFAULT_SIZE, default 1G)
  --default-fs FS      ext4 or xfs (env LOOPVOL_DEFAULT_FS, default ext4)
  --log-level LEVEL    fatal|error|warn|info|debug|trace|silent (env LOOPVOL_LOG_LEVEL, default info)
  --disk-pool DEVS     comma-separated whole disks for -o backend=disk volumes, by /dev/disk/by-id/ name (env LOOPVOL_DISK_POOL, default none)
  --spares N           sparse images kept formatted ahead per recently created size (ext4: also a template
                       per size), so Create skips mkfs
                       (env LOOPVOL_SPARES, default 2, 0 to 16; 0 turns it off)
  --overcommit RATIO   loop volumes' sizes may add up to RATIO x the data root filesystem's size
                       (env LOOPVOL_OVERCOMMIT, default 1.0); what is written at once (a preallocated
                       volume, a copy) must fit in its free space less what sparse volumes were promised
  --metrics-listen HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics (env LOOPVOL_METRICS_LISTEN,
                       default off)
  --max-freeze TIME    a snapshot of a mounted volume on a data root without reflinks may keep it frozen
                       this long for its copy, else it is refused unless forced (env LOOPVOL_MAX_FREEZE, default 2)
  --backup-repo REPO   a restic repository (a path, sftp:, s3:, rest:, ...) for loopvol backup and restores
                       (env LOOPVOL_BACKUP_REPO; restic's own environment passes through for credentials);
                       the operator creates it with restic init
  --backup-password-file FILE  its password (env LOOPVOL_BACKUP_PASSWORD_FILE)
  --backup-keep N      backups kept per volume, older ones pruned (env LOOPVOL_BACKUP_KEEP, default 0: all)
  --cluster URL        record volume ownership in ZooKeeper, e.g. zk://zk1:2181,zk2:2181/loopvol (env LOOPVOL_CLUSTER)
  --cluster-timeout TIME  ZooKeeper session timeout: how long a gone agent keeps its volumes (env LOOPVOL_CLUSTER_TIMEOUT, default 10s)
  --node-id ID         this agent's name in the cluster (env LOOPVOL_NODE_ID, default the host name)
  --restore-missing    a Create of a name whose owner is gone restores its latest backup (env LOOPVOL_RESTORE_MISSING=true)
  --cluster-auth-file FILE  USER:PASSWORD (mode 0600) for ZooKeeper's digest scheme: loopvol's nodes are that
                       user's only (env LOOPVOL_CLUSTER_AUTH_FILE; see docs/mesos.md)
  --allow-options KEYS Create accepts only these options (comma-separated, e.g. size,fs,sparse), privileged
                       ones (restore-other) only when named here; "default" stands for every option but those,
                       e.g. default,restore-other (env LOOPVOL_ALLOW_OPTIONS, default all but the privileged)
  --deny-options KEYS  Create refuses these options (env LOOPVOL_DENY_OPTIONS, e.g. backup,from)

  TIME is 500ms, 2s, 1m, 1h, or a bare number of seconds.`;

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      socket: { type: 'string' },
      'data-root': { type: 'string' },
      'default-size': { type: 'string' },
      'default-fs': { type: 'string' },
      'log-level': { type: 'string' },
      'disk-pool': { type: 'string' },
      'mount-root': { type: 'string' },
      spares: { type: 'string' },
      overcommit: { type: 'string' },
      'metrics-listen': { type: 'string' },
      'max-freeze': { type: 'string' },
      'backup-repo': { type: 'string' },
      'backup-password-file': { type: 'string' },
      'backup-keep': { type: 'string' },
      cluster: { type: 'string' },
      'cluster-timeout': { type: 'string' },
      'node-id': { type: 'string' },
      'restore-missing': { type: 'boolean' },
      'allow-options': { type: 'string' },
      'deny-options': { type: 'string' },
      'cluster-auth-file': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const config = resolveConfig(
    {
      socket: values.socket,
      dataRoot: values['data-root'],
      defaultSize: values['default-size'],
      defaultFs: values['default-fs'],
      logLevel: values['log-level'],
      diskPool: values['disk-pool'],
      mountRoot: values['mount-root'],
      spares: values.spares,
      overcommit: values.overcommit,
      metricsListen: values['metrics-listen'],
      maxFreeze: values['max-freeze'],
      backupRepo: values['backup-repo'],
      backupPasswordFile: values['backup-password-file'],
      backupKeep: values['backup-keep'],
      cluster: values.cluster,
      clusterTimeout: values['cluster-timeout'],
      nodeId: values['node-id'],
      restoreMissing: values['restore-missing'] ? 'true' : undefined,
      allowOptions: values['allow-options'],
      denyOptions: values['deny-options'],
      clusterAuthFile: values['cluster-auth-file'],
    },
    process.env,
  );
  await serve(config);
}

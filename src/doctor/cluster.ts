import { pino } from 'pino';
import { readClusterAuth } from '../cluster/auth.js';
import type { ClusterOptions } from '../cluster/options.js';
import { ZkSession, ZooKeeperDenied } from '../cluster/zk.js';
import type { Finding } from './finding.js';

const CONNECT_WAIT_MS = 5_000;

/**
 * The cluster as the daemon would use it: the auth file (mode and format), whether ZooKeeper
 * answers, whether it lets loopvol's identity read the root, and whether the root is still open
 * to everyone (nodes made before --cluster-auth-file keep their open ACL).
 */
export async function checkCluster(options: ClusterOptions): Promise<Finding[]> {
  const findings: Finding[] = [];
  let auth: Awaited<ReturnType<typeof readClusterAuth>> | undefined;
  if (options.authFile) {
    try {
      auth = await readClusterAuth(options.authFile);
      findings.push({
        status: 'ok',
        subject: 'cluster auth',
        detail: `${options.authFile}: user ${auth.user}, mode 0600`,
      });
    } catch (err) {
      return [
        ...findings,
        {
          status: 'fail',
          subject: 'cluster auth',
          detail: (err as Error).message,
          fix: 'see docs/mesos.md, ZooKeeper access control',
        },
      ];
    }
  } else {
    findings.push({
      status: 'warn',
      subject: 'cluster auth',
      detail: "no --cluster-auth-file: anyone who reaches ZooKeeper can move loopvol's volumes",
      fix: 'set LOOPVOL_CLUSTER_AUTH_FILE (docs/mesos.md, ZooKeeper access control)',
    });
  }
  const quiet = pino({ level: 'silent' });
  const session = new ZkSession(
    options.connectString,
    options.timeoutMs,
    { onSession: async () => undefined, onExpired: () => undefined },
    quiet,
    auth,
  );
  try {
    await session.open(CONNECT_WAIT_MS);
    if (!(await session.exists(options.root))) {
      findings.push({
        status: 'ok',
        subject: 'cluster',
        detail: `${options.root} does not exist yet: the first agent creates it`,
      });
      return findings;
    }
    const volumes = (await session.exists(`${options.root}/volumes`))
      ? (await session.children(`${options.root}/volumes`)).length
      : 0;
    findings.push({ status: 'ok', subject: 'cluster', detail: `reads ${options.root} (${volumes} volumes)` });
    const open = (await session.acl(options.root)).includes('world:anyone');
    if (auth && open) {
      findings.push({
        status: 'fail',
        subject: 'cluster ACL',
        detail: `${options.root} is open to every client: it was made before --cluster-auth-file`,
        fix: `restrict it with zkCli.sh setAcl -R ${options.root} digest:${auth.user}:<hash>:cdrwa (docs/mesos.md)`,
      });
    }
  } catch (err) {
    findings.push({
      status: 'fail',
      subject: 'cluster',
      detail: (err as Error).message,
      fix:
        err instanceof ZooKeeperDenied
          ? "the nodes' ACL names another identity: use the auth file the agents use"
          : 'check LOOPVOL_CLUSTER and that ZooKeeper runs',
    });
  } finally {
    session.close();
  }
  return findings;
}

import type { Logger } from 'pino';

/** Where the daemon joins (from --cluster zk://HOST:PORT[,HOST:PORT...]/PATH). */
export interface ClusterOptions {
  connectString: string;
  /** The root of loopvol's nodes, e.g. /loopvol. */
  root: string;
  /** This agent's name in the cluster (--node-id, default the host name). */
  nodeId: string;
  /** The session timeout: how long an agent may be gone before its volumes can be taken over. */
  timeoutMs: number;
  /** A Create of a name whose owner is gone restores its latest backup (--restore-missing). */
  restoreMissing: boolean;
  /** USER:PASSWORD for ZooKeeper's digest scheme (--cluster-auth-file); the nodes are that user's only. */
  authFile?: string;
}

/**
 * How long a takeover waits after it first sees the owner's agent node gone (its session expired):
 * the margin the old owner's self-fencing has, by its own clock, beyond the expiry to have shut
 * its copies down (it does at the timeout after its last answer, which is before the expiry).
 */
export function takeoverMarginMs(timeoutMs: number): number {
  return Math.ceil(timeoutMs / 2);
}

/** The timeout to run on: the negotiated one when ZooKeeper granted less than asked (logged). */
export function effectiveTimeout(requestedMs: number, negotiatedMs: number, log: Logger): number {
  if (negotiatedMs <= 0 || negotiatedMs >= requestedMs) return requestedMs;
  log.error(
    { requestedMs, negotiatedMs },
    `ZooKeeper granted a session timeout of ${negotiatedMs} ms, shorter than --cluster-timeout ${requestedMs} ms (its maxSessionTimeout): self-fencing runs on ${negotiatedMs} ms; raise maxSessionTimeout in zoo.cfg or lower --cluster-timeout`,
  );
  return negotiatedMs;
}

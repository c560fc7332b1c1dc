/**
 * One finding: `fail` makes doctor exit non-zero; `fix` says what to do about it. Apart from
 * checks.ts, which loads cluster.ts (and the ZooKeeper client) only when a cluster is set: both
 * report findings.
 */
export interface Finding {
  status: 'ok' | 'warn' | 'fail';
  subject: string;
  detail: string;
  fix?: string;
}

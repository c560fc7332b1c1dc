/**
 * One finding: `fail` makes doctor exit non-zero; `fix` says what to do about it. Apart from
 * checks.ts, which loads cluster.ts (and the ZooKeeper client) only when a cluster is set, and
 * encryption.ts: all report findings.
 */
export interface Finding {
  status: 'ok' | 'warn' | 'fail';
  subject: string;
  detail: string;
  fix?: string;
}

export const ok = (subject: string, detail: string): Finding => ({ status: 'ok', subject, detail });
export const bad = (status: 'warn' | 'fail', subject: string, detail: string, fix: string): Finding => ({
  status,
  subject,
  detail,
  fix,
});

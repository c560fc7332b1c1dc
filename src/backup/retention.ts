/** What ranking backups needs to know of each. */
export interface Ranked {
  volume: string;
  /** The ownership generation the backup was made in (its `gen=` tag; 0 without a cluster). */
  generation: number;
  time: string;
}

/**
 * Newest first: a later ownership generation before an earlier one whatever their times (a stale
 * copy may have backed up after the takeover), then the later time.
 */
export const newestFirst = (a: Ranked, b: Ranked): number =>
  b.generation - a.generation || Date.parse(b.time) - Date.parse(a.time);

/**
 * The backups retention forgets after a backup of `volume` made in `generation`: of that volume's
 * backups (never another volume's), the `keep` newest by newestFirst stay, so older generations
 * go first and the newest of the current one always stays. Backups of a later generation are
 * another owner's (this copy is stale) and never touched.
 */
export function toForget<T extends Ranked>(
  backups: T[],
  volume: string,
  generation: number,
  keep: number,
): T[] {
  return backups
    .filter((b) => b.volume === volume && b.generation <= generation)
    .sort(newestFirst)
    .slice(Math.max(keep, 1));
}

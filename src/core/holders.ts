/**
 * Who holds a mounted volume: container IDs with a count each, because `docker cp` mounts again
 * with the ID of the running container and unmounts once per mount. Requests without an ID
 * (dvdcli, the Mesos isolator, which counts references itself) share one idempotent holder.
 */
export type Holders = Record<string, number>;

/** The holder key for requests that carry no ID. */
export const LEGACY_HOLDER = '';

export function holderKey(id: string | undefined): string {
  return id ?? LEGACY_HOLDER;
}

export function addHolder(holders: Holders, id: string | undefined): Holders {
  const key = holderKey(id);
  if (key === LEGACY_HOLDER) return { ...holders, [key]: 1 };
  return { ...holders, [key]: (countOf(holders, key) ?? 0) + 1 };
}

/** Returns the new holders, and whether the ID held the volume at all. */
export function removeHolder(holders: Holders, id: string | undefined): { holders: Holders; known: boolean } {
  const key = holderKey(id);
  const count = countOf(holders, key);
  if (count === undefined) return { holders, known: false };
  const next = { ...holders };
  if (key === LEGACY_HOLDER || count <= 1) delete next[key];
  else next[key] = count - 1;
  return { holders: next, known: true };
}

/** Own keys only: an ID such as "toString" must not read Object.prototype. */
function countOf(holders: Holders, key: string): number | undefined {
  return Object.hasOwn(holders, key) ? holders[key] : undefined;
}

export function holderCount(holders: Holders): number {
  return Object.keys(holders).length;
}

/** "container 3f2a…(x2), a client without ID" — for messages that name who holds a volume. */
export function describeHolders(holders: Holders): string {
  return Object.entries(holders)
    .map(([key, n]) => {
      const who =
        key === LEGACY_HOLDER ? 'a client without mount ID (dvdcli/Mesos)' : `mount ID ${key.slice(0, 12)}`;
      return n > 1 ? `${who} (x${n})` : who;
    })
    .join(', ');
}

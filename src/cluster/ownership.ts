import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { VolumeError } from '../core/errors.js';
import { writeFileAtomic } from '../state/atomic.js';

/**
 * What the cluster records of a volume: /ROOT/volumes/<name>. `generation` is the fencing token:
 * 1 at the first Create, raised by every takeover in the same versioned write that moves the
 * owner. Nodes written before generations existed read as 0.
 */
const ownershipSchema = z.object({
  owner: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  since: z.string().max(64),
  generation: z.number().int().nonnegative().default(0),
});
export type Ownership = z.infer<typeof ownershipSchema>;

/** Reads a volume node's data; anything else (someone's hand edit, garbage) is refused by name. */
export function parseOwnership(path: string, data: string): Ownership {
  const parsed = ownershipSchema.safeParse(parseJson(data));
  if (!parsed.success) {
    throw new VolumeError(
      `ZooKeeper node ${path} does not hold a volume's ownership ({"owner","since","generation"}): someone wrote it by hand or it is damaged; restore it or remove it with zkCli.sh (see docs/mesos.md), then try again`,
      'conflict',
    );
  }
  return parsed.data;
}

/**
 * What this agent records beside its copy of a cluster volume (volumes/<name>/cluster.json):
 * the generation the copy belongs to, and whether it was fenced (its filesystem shut down, or its
 * ownership found moved) and why. A fenced copy is never mounted, served or backed up again
 * unless the cluster still names this agent owner at the same generation and nothing mounts it.
 */
const copySchema = z.object({
  generation: z.number().int().nonnegative(),
  fenced: z
    .object({
      at: z.string(),
      reason: z.string().max(1024),
      // lost: shut down after a lost session (revivable while still the owner's generation);
      // stale: its ownership moved (never revived). Records without it are never revived.
      kind: z.enum(['lost', 'stale']).optional(),
    })
    .optional(),
});
export type CopyState = z.infer<typeof copySchema>;

export const COPY_FILE = 'cluster.json';

/** The copy's record, or undefined when none was written yet (a new or pre-cluster volume). */
export async function readCopy(dir: string): Promise<CopyState | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, COPY_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = copySchema.safeParse(parseJson(text));
  // An unreadable record could hide a fence: the copy counts as fenced.
  return parsed.success
    ? parsed.data
    : {
        generation: -1,
        fenced: { at: new Date().toISOString(), reason: `${COPY_FILE} unreadable`, kind: 'stale' },
      };
}

export async function writeCopy(dir: string, copy: CopyState): Promise<void> {
  await writeFileAtomic(join(dir, COPY_FILE), `${JSON.stringify(copy)}\n`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

import { VolumeError } from '../core/errors.js';

export function statusOf(err: unknown): 400 | 404 | 409 | 500 {
  return err instanceof VolumeError ? err.status : 500;
}

/** The operator-facing part of an underlying failure. */
export function explain(err: unknown): string {
  if (err instanceof VolumeError) return err.message;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC')
    return 'no space left on the host filesystem holding the data root: free space there and try again';
  return e instanceof Error ? e.message : String(err);
}

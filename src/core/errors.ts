/**
 * What kind of failure a VolumeError is. The layers below the protocol speak in kinds only; the
 * protocol alone turns them into HTTP statuses (protocol/errors.ts).
 */
export type ErrorKind = 'not-found' | 'conflict' | 'invalid' | 'busy' | 'no-space' | 'internal';

/**
 * An error whose message is meant for the operator: it is sent to the client as `Err` verbatim.
 * Anything else that escapes the service is a bug and is reported without internals.
 */
export class VolumeError extends Error {
  constructor(
    message: string,
    readonly kind: ErrorKind = 'internal',
  ) {
    super(message);
    this.name = 'VolumeError';
  }
}

export const notFound = (name: string) =>
  new VolumeError(
    `volume ${name} does not exist: create it first (docker volume create -d loopvol ${name})`,
    'not-found',
  );

/** What the operator is told when the host filesystem is full: what happened and what to do. */
const NO_SPACE: ReadonlyMap<string | undefined, string> = new Map([
  ['ENOSPC', 'no space left on the host filesystem holding the data root: free space there and try again'],
  [
    'EDQUOT',
    'disk quota exceeded on the host filesystem holding the data root: free space there or raise the quota, and try again',
  ],
]);

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** The operator-facing part of an underlying failure (for messages and log fields). */
export function describeError(err: unknown): string {
  if (err instanceof VolumeError) return err.message;
  return NO_SPACE.get(codeOf(err)) ?? (err instanceof Error ? err.message : String(err));
}

/**
 * The one way to re-throw a failure as the operator's error: `context: cause` (then `; advice`).
 * The cause's wording is kept, and so is a VolumeError's kind; a system error's code decides its
 * kind (ENOSPC and EDQUOT no-space, EBUSY busy); anything else is internal.
 */
export function wrap(err: unknown, context: string, advice?: string): VolumeError {
  const message = `${context}: ${describeError(err)}${advice ? `; ${advice}` : ''}`;
  return new VolumeError(message, kindOf(err));
}

function kindOf(err: unknown): ErrorKind {
  if (err instanceof VolumeError) return err.kind;
  const code = codeOf(err);
  if (NO_SPACE.has(code)) return 'no-space';
  return code === 'EBUSY' ? 'busy' : 'internal';
}

/**
 * A volume's filesystem needs repairs that are not safe to make without the operator:
 * `loopvol fsck NAME --repair` makes them. `output` is the checker's own account.
 */
export class FilesystemDamaged extends Error {
  constructor(
    readonly detail: string,
    readonly output: readonly string[],
  ) {
    super(detail);
    this.name = 'FilesystemDamaged';
  }
}

import type { ErrorKind } from '../core/errors.js';

/**
 * The HTTP status each kind of VolumeError is answered with: the only place kinds meet HTTP.
 * A full host is a 409 like the space guard's refusals (it clears once space is freed); busy is
 * a 409 too (it clears once the user lets go).
 */
const STATUS: Readonly<Record<ErrorKind, number>> = {
  'not-found': 404,
  conflict: 409,
  invalid: 400,
  busy: 409,
  'no-space': 409,
  internal: 500,
};

export function httpStatus(kind: ErrorKind): number {
  return STATUS[kind];
}

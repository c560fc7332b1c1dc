/**
 * An error whose message is meant for the operator: it is sent to the client as `Err` verbatim.
 * Anything else that escapes the service is a bug and is reported without internals.
 */
export class VolumeError extends Error {
  constructor(
    message: string,
    /** HTTP status the protocol layer sends with it. */
    readonly status: 400 | 404 | 409 | 500 = 500,
  ) {
    super(message);
    this.name = 'VolumeError';
  }
}

export const notFound = (name: string) =>
  new VolumeError(
    `volume ${name} does not exist: create it first (docker volume create -d loopvol ${name})`,
    404,
  );

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

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

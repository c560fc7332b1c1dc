/**
 * The expected behaviour of the VolumeDriver API, as a plain model: which requests succeed and
 * what state they leave. Property tests run random requests against the real plugin and this model.
 */
export const VALID_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
export const VALID_ID = /^[A-Za-z0-9_.:-]{0,256}$/;

export type Command =
  /** optsValid 'if-exists': well-formed but unserviceable (backend=disk without a pool), a no-op only on an existing volume. */
  | { kind: 'create'; name: unknown; opts: unknown; optsValid: boolean | 'if-exists' }
  | { kind: 'mount' | 'unmount'; name: unknown; id: unknown }
  | { kind: 'remove' | 'get' | 'path'; name: unknown }
  | { kind: 'list' }
  | { kind: 'garbage'; method: string; body: string };

const validName = (name: unknown): name is string =>
  typeof name === 'string' && name.length <= 255 && VALID_NAME.test(name);
const validId = (id: unknown) =>
  id === undefined || id === null || (typeof id === 'string' && VALID_ID.test(id));
/** Requests without an ID (or with "") share one holder. */
const holderKey = (id: unknown) => (typeof id === 'string' && id !== '' ? id : '');

export class Model {
  readonly volumes = new Map<string, Map<string, number>>();

  /** Applies a command; returns whether the plugin must answer with success. */
  apply(c: Command): boolean {
    switch (c.kind) {
      case 'list':
        return true;
      case 'garbage':
        return false;
      case 'create':
        if (!validName(c.name) || !c.optsValid) return false;
        if (this.volumes.has(c.name)) return true;
        if (c.optsValid === 'if-exists') return false;
        this.volumes.set(c.name, new Map());
        return true;
      default:
        break;
    }
    if (!validName(c.name)) return false;
    if ((c.kind === 'mount' || c.kind === 'unmount') && !validId(c.id)) return false;
    const holders = this.volumes.get(c.name);
    if (!holders) return false;
    switch (c.kind) {
      case 'mount': {
        const key = holderKey(c.id);
        holders.set(key, key === '' ? 1 : (holders.get(key) ?? 0) + 1);
        return true;
      }
      case 'unmount': {
        const key = holderKey(c.id);
        const n = holders.get(key);
        if (n !== undefined) {
          if (key === '' || n <= 1) holders.delete(key);
          else holders.set(key, n - 1);
        }
        return true;
      }
      case 'remove':
        if (holders.size > 0) return false;
        this.volumes.delete(c.name);
        return true;
      default:
        return true;
    }
  }
}

/**
 * Serialises async work per key: operations on one volume run one at a time, different volumes
 * in parallel. Keys are dropped when idle so the map does not grow with every name ever seen.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    // Tails never reject (see below), so `work` always runs after the previous one settles.
    const result = previous.then(work);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /**
   * Runs `work` holding every key in `keys`. They are taken one by one in sorted order, the same
   * order for every caller, so two runs over crossed keys (a then b, b then a) cannot each hold
   * one and wait for the other.
   */
  runAll<T>(keys: readonly string[], work: () => Promise<T>): Promise<T> {
    const [first, ...rest] = [...new Set(keys)].sort();
    return first === undefined
      ? Promise.resolve().then(work)
      : this.run(first, () => this.runAll(rest, work));
  }

  /** Number of keys with work queued or running (tests use it to check nothing is left behind). */
  get size(): number {
    return this.tails.size;
  }
}

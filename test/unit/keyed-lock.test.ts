import { describe, expect, it } from 'vitest';
import { KeyedLock } from '../../src/core/keyed-lock.js';

/** A promise the test resolves or rejects by hand, so ordering is decided by the test, not the clock. */
function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued promise callback run. */
const settle = () => new Promise((r) => setImmediate(r));

describe('KeyedLock', () => {
  it('runs work on one key one at a time, in order', async () => {
    const lock = new KeyedLock();
    const events: string[] = [];
    const gate = deferred();
    const first = lock.run('v', async () => {
      events.push('first:start');
      await gate.promise;
      events.push('first:end');
      return 1;
    });
    const second = lock.run('v', async () => {
      events.push('second:start');
      return 2;
    });
    await settle();
    expect(events).toEqual(['first:start']);
    gate.resolve();
    expect(await Promise.all([first, second])).toEqual([1, 2]);
    expect(events).toEqual(['first:start', 'first:end', 'second:start']);
  });

  it('runs different keys in parallel', async () => {
    const lock = new KeyedLock();
    const gate = deferred();
    const started: string[] = [];
    const a = lock.run('a', async () => {
      started.push('a');
      await gate.promise;
    });
    const b = lock.run('b', async () => {
      started.push('b');
    });
    await b; // finishes while a is still blocked
    expect(started).toEqual(['a', 'b']);
    gate.resolve();
    await a;
  });

  it('does not block the next task after one rejects, and passes the rejection to its caller', async () => {
    const lock = new KeyedLock();
    const failing = lock.run('v', async () => {
      throw new Error('boom');
    });
    const next = lock.run('v', async () => 'ran');
    await expect(failing).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ran');
  });

  it('does not block the next task after one throws synchronously', async () => {
    const lock = new KeyedLock();
    const failing = lock.run('v', () => {
      throw new Error('sync');
    });
    await expect(failing).rejects.toThrow('sync');
    await expect(lock.run('v', async () => 'ran')).resolves.toBe('ran');
  });

  it('forgets keys once idle', async () => {
    const lock = new KeyedLock();
    const gate = deferred();
    const held = lock.run('a', () => gate.promise);
    const queued = lock.run('a', async () => undefined);
    const other = lock.run('b', async () => {
      throw new Error('x');
    });
    expect(lock.size).toBe(2);
    await other.catch(() => undefined);
    await settle();
    expect(lock.size).toBe(1);
    gate.resolve();
    await Promise.all([held, queued]);
    await settle();
    expect(lock.size).toBe(0);
  });

  it('keeps the key while later work is queued behind finished work', async () => {
    const lock = new KeyedLock();
    const gate = deferred();
    const first = lock.run('a', async () => undefined);
    const second = lock.run('a', () => gate.promise);
    await first;
    await settle();
    expect(lock.size).toBe(1);
    gate.resolve();
    await second;
    await settle();
    expect(lock.size).toBe(0);
  });

  it('takes several keys in one order, so crossed runs cannot wait on each other', async () => {
    const lock = new KeyedLock();
    const gate = deferred();
    const events: string[] = [];
    const held = lock.run('a', () => gate.promise);
    const crossed = [
      lock.runAll(['b', 'a'], async () => {
        events.push('b+a');
      }),
      lock.runAll(['a', 'b'], async () => {
        events.push('a+b');
      }),
    ];
    // Both wait for a before taking b: b alone is free meanwhile.
    await lock.run('b', async () => events.push('b'));
    expect(events).toEqual(['b']);
    gate.resolve();
    await Promise.all([held, ...crossed]);
    expect(events).toEqual(['b', 'b+a', 'a+b']);
    await expect(lock.runAll(['c', 'c'], async () => 'once')).resolves.toBe('once');
    await settle();
    expect(lock.size).toBe(0);
  });
});

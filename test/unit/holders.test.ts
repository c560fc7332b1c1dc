import { describe, expect, it } from 'vitest';
import {
  addHolder,
  describeHolders,
  type Holders,
  holderCount,
  LEGACY_HOLDER,
  removeHolder,
} from '../../src/core/holders.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('holders', () => {
  it('counts the same ID twice, so docker cp needs its own Unmount', () => {
    let holders: Holders = {};
    holders = addHolder(holders, A);
    holders = addHolder(holders, A);
    expect(holders).toEqual({ [A]: 2 });
    expect(holderCount(holders)).toBe(1);

    let step = removeHolder(holders, A);
    expect(step).toEqual({ holders: { [A]: 1 }, known: true });
    expect(holderCount(step.holders)).toBe(1);
    step = removeHolder(step.holders, A);
    expect(step).toEqual({ holders: {}, known: true });
    expect(holderCount(step.holders)).toBe(0);
  });

  it('keeps IDs apart', () => {
    const holders = addHolder(addHolder({}, A), B);
    expect(holderCount(holders)).toBe(2);
    expect(removeHolder(holders, A).holders).toEqual({ [B]: 1 });
  });

  it('treats requests without ID as one idempotent holder (the Mesos isolator counts for itself)', () => {
    let holders: Holders = {};
    for (let i = 0; i < 3; i++) holders = addHolder(holders, undefined);
    expect(holders).toEqual({ [LEGACY_HOLDER]: 1 });
    const step = removeHolder(holders, undefined);
    expect(step).toEqual({ holders: {}, known: true });
  });

  it('mixes an ID holder and the legacy holder', () => {
    const holders = addHolder(addHolder({}, undefined), A);
    expect(holderCount(holders)).toBe(2);
    expect(removeHolder(holders, undefined).holders).toEqual({ [A]: 1 });
  });

  it('reports an unknown ID without changing anything', () => {
    const holders = addHolder({}, A);
    const step = removeHolder(holders, B);
    expect(step.known).toBe(false);
    expect(step.holders).toEqual({ [A]: 1 });
    expect(removeHolder({}, undefined)).toEqual({ holders: {}, known: false });
  });

  it('never mutates its input', () => {
    const holders = Object.freeze({ [A]: 2 }) as Holders;
    expect(() => addHolder(holders, A)).not.toThrow();
    expect(() => removeHolder(holders, A)).not.toThrow();
    expect(holders).toEqual({ [A]: 2 });
  });

  it('describes holders by shortened ID and count, and the legacy holder by client', () => {
    const text = describeHolders({ [A]: 2, [B]: 1, [LEGACY_HOLDER]: 1 });
    expect(text).toContain(`mount ID ${'a'.repeat(12)} (x2)`);
    expect(text).toContain(`mount ID ${'b'.repeat(12)}`);
    expect(text).not.toContain('b'.repeat(13));
    expect(text).toMatch(/without mount ID \(dvdcli\/Mesos\)/);
    expect(describeHolders({})).toBe('');
  });

  // IDs named like Object.prototype members must be counted as own keys, not read from the prototype.
  it.each(['toString', 'constructor', 'hasOwnProperty', 'valueOf'])(
    'counts the ID %j like any other',
    (id) => {
      expect(addHolder({}, id)).toEqual({ [id]: 1 });
      expect(removeHolder({}, id)).toEqual({ holders: {}, known: false });
    },
  );
});

import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../src/core/duration.js';

const ANY = { minMs: 0, maxMs: Number.MAX_SAFE_INTEGER };

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1.5m', 90_000],
    [' 2 s ', 2000],
    ['0.001', 1],
  ])('reads %j as %i ms', (input, ms) => {
    expect(parseDuration('--x', input, ANY)).toEqual({ ms });
  });

  it.each([
    ['10', 10_000],
    ['0.5', 500],
    ['2', 2000],
  ])('reads a bare number %j as seconds, the historic unit', (input, ms) => {
    expect(parseDuration('--x', input, ANY)).toEqual({ ms });
  });

  it.each(['', 'soon', '2 weeks', '1w', '-1s', '1e3', '2S', '1.2345s', '1234567890s', 's'])(
    'refuses %j, naming the flag and the accepted forms',
    (input) => {
      expect(parseDuration('--cluster-timeout', input, ANY)).toEqual({
        error: '--cluster-timeout takes a duration such as 500ms, 2s, 1m or 1h (a bare number is seconds)',
      });
    },
  );

  it('refuses durations outside the bounds, in words the operator can act on', () => {
    const bounds = { minMs: 60_000, maxMs: 3_600_000 };
    expect(parseDuration('backup', '59s', bounds)).toEqual({ error: 'backup must be at least 1m' });
    expect(parseDuration('backup', '2h', bounds)).toEqual({ error: 'backup must be at most 1h' });
    expect(parseDuration('backup', '60', bounds)).toEqual({ ms: 60_000 });
  });
});

describe('formatDuration', () => {
  it.each([
    [500, '500ms'],
    [1000, '1s'],
    [90_000, '90s'],
    [60_000, '1m'],
    [7_200_000, '2h'],
    [86_400_000, '1d'],
  ])('formats %i ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

import { describe, expect, it } from 'vitest';
import { isWithin } from '../../src/core/paths.js';

describe('isWithin', () => {
  it.each([
    ['/a', '/a', true],
    ['/a/b', '/a', true],
    ['/a/b/', '/a/', true],
    ['/a/..b', '/a', true],
    ['/ab', '/a', false],
    ['/', '/a', false],
    ['/a/../b', '/a', false],
    ['/b', '', false],
  ])('%s within %s: %s', (path, dir, expected) => {
    expect(isWithin(path, dir)).toBe(expected);
  });
});

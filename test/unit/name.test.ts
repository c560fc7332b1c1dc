import { describe, expect, it } from 'vitest';
import { volumeName } from '../../src/core/name.js';

const firstMessage = (value: unknown) => volumeName.safeParse(value).error?.issues[0]?.message;

describe('volumeName', () => {
  it.each([
    'ab',
    'data',
    'pg_data-1.2',
    'A0',
    '0a',
    'a..',
    'a'.repeat(255),
    '3f2a9c0b7d1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a',
  ])('accepts %j', (name) => {
    expect(volumeName.safeParse(name).success).toBe(true);
  });

  // Docker's own client treats a one-character name as a Windows drive path, and its local driver
  // refuses it too; the message says "2-255".
  it('rejects a 1-character name, saying names have at least 2', () => {
    expect(firstMessage('a')).toMatch(/2-255 characters/);
  });

  it('rejects 256 characters, naming the limit', () => {
    expect(firstMessage('a'.repeat(256))).toMatch(/longer than 255/);
  });

  it.each([
    ['..', 'parent directory'],
    ['.', 'current directory'],
    ['a/b', 'path separator'],
    ['../etc', 'traversal'],
    ['-x', 'option-like'],
    ['.x', 'hidden file'],
    ['_x', 'leading underscore'],
    ['héllo', 'non-ASCII letter'],
    ['名前', 'CJK'],
    ['a\u0000b', 'NUL'],
    ['a b', 'space'],
    ['a\nb', 'newline'],
    ['ab\n', 'trailing newline'],
    ['', 'empty'],
  ])('rejects %j (%s) with the naming rule', (name) => {
    expect(firstMessage(name)).toMatch(/letters, digits, "_", "." and "-", starting with a letter or digit/);
  });

  it.each([undefined, null, 5, ['ab'], { name: 'ab' }])('rejects the non-string %j', (value) => {
    expect(firstMessage(value)).toBe('Name is required and must be a string');
  });
});

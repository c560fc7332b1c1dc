import { describe, expect, it } from 'vitest';
import { formatSize, MAX_SIZE_BYTES, parseSize } from '../../src/core/size.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

describe('parseSize', () => {
  it.each([
    ['64M', 64 * MiB],
    ['10G', 10 * GiB],
    ['1.5T', 1.5 * TiB],
    ['512MiB', 512 * MiB],
    ['10GB', 10 * GiB],
    ['1024k', MiB],
    ['1024K', MiB],
    ['10g', 10 * GiB],
    ['4096b', 4096],
    [' 10 G ', 10 * GiB],
    ['16T', 16 * TiB],
  ])('reads %j as %i bytes (every unit is binary)', (input, bytes) => {
    expect(parseSize(input)).toEqual({ bytes });
  });

  it.each([
    ['5', 5 * GiB],
    ['1', GiB],
    ['2.5', 2.5 * GiB],
  ])('reads a bare number %j as GiB, as Marathon and REX-Ray send it', (input, bytes) => {
    expect(parseSize(input)).toEqual({ bytes });
  });

  it.each([
    ['0.5G', 512 * MiB],
    ['0.25M', 256 * KiB],
    ['1.75k', 4096],
  ])('accepts the decimal %j', (input, bytes) => {
    expect(parseSize(input)).toEqual({ bytes });
  });

  it.each([
    ['1b', 4096],
    ['1k', 4096],
    ['4097b', 8192],
    ['8191B', 8192],
    ['0.001M', 4096],
  ])('rounds %j up to a multiple of 4 KiB', (input, bytes) => {
    expect(parseSize(input)).toEqual({ bytes });
  });

  it.each(['0', '0G', '0.0', '0k'])('rejects %j as not greater than zero', (input) => {
    const result = parseSize(input);
    expect(result).toHaveProperty('error');
    expect((result as { error: string }).error).toMatch(/greater than zero/);
  });

  it.each([
    '-1',
    '-1G',
    'abc',
    '',
    '   ',
    '1e9G',
    '1e3',
    '10 XB',
    '10XB',
    '.5G',
    '1.G',
    '10GiBs',
    '10 G B',
    '0x10G',
    'G',
  ])('rejects %j as not a size, quoting the input', (input) => {
    const result = parseSize(input);
    expect(result).toHaveProperty('error');
    const { error } = result as { error: string };
    expect(error).toContain(`"${input}"`);
    expect(error).toMatch(/512M, 10G or 1.5T/);
  });

  it.each(['17T', '16.01T', '99999999999999999999G', `${Number.MAX_SAFE_INTEGER}T`])(
    'rejects %j above the 16T maximum, naming it',
    (input) => {
      const result = parseSize(input);
      expect(result).toEqual({ error: expect.stringMatching(/larger than the maximum of 16T/) });
    },
  );

  it('returns whole multiples of 4 KiB within the limits for any number it accepts', () => {
    for (const input of ['1', '3.3M', '7k', '123456789b', '0.3T', '12.345G']) {
      const result = parseSize(input);
      if (!('bytes' in result)) throw new Error(`${input}: ${result.error}`);
      expect(result.bytes % 4096).toBe(0);
      expect(result.bytes).toBeGreaterThan(0);
      expect(result.bytes).toBeLessThanOrEqual(MAX_SIZE_BYTES);
    }
  });
});

describe('formatSize', () => {
  it.each([
    [300 * MiB, '300M'],
    [16 * MiB, '16M'],
    [1.5 * GiB, '1.5G'],
    [16 * TiB, '16T'],
    [4096, '4K'],
    [100, '100B'],
  ])('shows %i bytes as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });
});

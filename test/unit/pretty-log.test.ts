import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/server/logger.js';

const at = new Date(2026, 11, 3, 15, 4, 5).getTime();

describe('the pretty log format', () => {
  it('writes time, level, message, volume and request first, other fields, the error last', () => {
    const line = JSON.stringify({
      level: 50,
      time: at,
      pid: 42,
      req: 'ab12cd34',
      method: 'VolumeDriver.Mount',
      volume: 'pg',
      err: { type: 'Error', message: 'mount failed: busy', stack: 'Error: mount failed\n    at x' },
      msg: 'request failed',
    });
    expect(prettyLine(line)).toBe(
      '15:04:05 ERROR request failed volume=pg req=ab12cd34 method=VolumeDriver.Mount err="mount failed: busy"\n',
    );
    expect(prettyLine(line, true)).toContain('\n    Error: mount failed\n        at x\n');
  });

  it('quotes what would not read as one word, and writes objects as JSON', () => {
    expect(
      prettyLine(JSON.stringify({ level: 30, time: at, msg: 'started', path: 'a b', n: 3, o: { k: 1 } })),
    ).toBe('15:04:05 INFO  started path="a b" n=3 o="{\\"k\\":1}"\n');
  });

  it('passes a line that is not JSON through', () => {
    expect(prettyLine('not json')).toBe('not json\n');
  });
});

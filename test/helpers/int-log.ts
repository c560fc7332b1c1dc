import { Writable } from 'node:stream';
import { type Logger, pino } from 'pino';

/** For code under test whose log output the test does not read. */
export const silentLog: Logger = pino({ level: 'silent' });

/** A pino logger whose JSON lines the test reads back. */
export interface CapturedLog {
  log: Logger;
  /** Every line logged so far, parsed (a line that is not JSON fails the test where it is read). */
  lines(): Record<string, unknown>[];
}

export function captureLog(level = 'debug'): CapturedLog {
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: pino({ level }, sink), lines: () => raw.map((line) => JSON.parse(line)) };
}

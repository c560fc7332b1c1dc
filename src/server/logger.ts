import { type DestinationStream, type Logger, pino } from 'pino';

/** How the daemon's log lines look: one JSON object each, or a compact line for a terminal. */
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** pino's level numbers, as the pretty format names them. */
const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/** Fields the pretty format shows in its own place, or not at all (pid and hostname say nothing on a terminal). */
const PLACED = new Set(['time', 'level', 'msg', 'pid', 'hostname', 'volume', 'req', 'err']);

/** A field's value as `key=value`: quoted only when it would not read as one word. */
function field(key: string, value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`;
}

/**
 * One pino JSON line as a line for a human: local time, level, message, the volume and request it
 * concerns, the other fields as key=value, and the error's message last (its stack only at debug).
 */
export function prettyLine(json: string, showStack = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const time = new Date(Number(entry.time)).toTimeString().slice(0, 8);
  const level = (LEVELS[Number(entry.level)] ?? String(entry.level)).padEnd(5);
  const err = entry.err as { message?: string; stack?: string } | undefined;
  const parts = [
    time,
    level,
    String(entry.msg ?? ''),
    ...(['volume', 'req'] as const).filter((k) => entry[k] !== undefined).map((k) => field(k, entry[k])),
    ...Object.entries(entry)
      .filter(([k, v]) => !PLACED.has(k) && v !== undefined)
      .map(([k, v]) => field(k, v)),
    ...(err ? [field('err', err.message ?? err)] : []),
  ];
  const stack = showStack && err?.stack ? `\n${err.stack.replace(/^/gm, '    ')}` : '';
  return `${parts.join(' ')}${stack}\n`;
}

/** The daemon's logger: JSON lines (journald, shippers) or, for a terminal, the pretty format. */
export function createLogger(level: string, format: LogFormat | undefined): Logger {
  const options = { level, base: { pid: process.pid } };
  if ((format ?? (process.stdout.isTTY ? 'pretty' : 'json')) === 'json') return pino(options);
  const showStack = level === 'debug' || level === 'trace';
  const pretty: DestinationStream = { write: (line) => process.stdout.write(prettyLine(line, showStack)) };
  return pino(options, pretty);
}

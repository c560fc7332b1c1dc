const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Bounds a duration must lie within, in milliseconds (both inclusive). */
export interface DurationBounds {
  minMs: number;
  maxMs: number;
}

/**
 * Parses `500ms`, `2s`, `1.5m`, `1h`, `1d`; a bare number is seconds, the unit every duration
 * flag and option had before units (`--cluster-timeout 10`, `--max-freeze 0.5`). `what` names the
 * flag or option in the error, which is returned rather than thrown so callers word the context.
 */
export function parseDuration(
  what: string,
  input: string,
  { minMs, maxMs }: DurationBounds,
): { ms: number } | { error: string } {
  const match = /^\s*(\d{1,9}(?:\.\d{1,3})?)\s*(ms|s|m|h|d)?\s*$/.exec(input);
  if (!match) {
    return { error: `${what} takes a duration such as 500ms, 2s, 1m or 1h (a bare number is seconds)` };
  }
  const ms = Math.round(Number(match[1]) * UNIT_MS[(match[2] ?? 's') as keyof typeof UNIT_MS]);
  if (ms < minMs) return { error: `${what} must be at least ${formatDuration(minMs)}` };
  if (ms > maxMs) return { error: `${what} must be at most ${formatDuration(maxMs)}` };
  return { ms };
}

/** Human form for messages: the largest unit that divides the duration, else milliseconds. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}

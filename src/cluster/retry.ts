/** How a retry loop waits: doubling from the first delay, capped (which also bounds its log lines). */
export interface Backoff {
  firstMs: number;
  maxMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `op` until it succeeds, waiting longer after each failure (capped at `maxMs`, so a
 * persistent failure is reported at most once per `maxMs`). Stops, without success, once
 * `wanted()` turns false (the session it was for is gone). Resolves whether it succeeded.
 */
export async function retryWithBackoff(
  op: () => Promise<void>,
  backoff: Backoff,
  wanted: () => boolean,
  failed: (err: Error, nextInMs: number) => void,
): Promise<boolean> {
  let delay = backoff.firstMs;
  while (wanted()) {
    try {
      await op();
      return true;
    } catch (err) {
      if (!wanted()) return false;
      failed(err as Error, delay);
      await sleep(delay);
      delay = Math.min(2 * delay, backoff.maxMs);
    }
  }
  return false;
}

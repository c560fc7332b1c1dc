import type { Logger } from 'pino';
import { describeError } from '../core/errors.js';

/** Work left running after answering (deleting removed volumes' files), and waiting for it. */
export class Afterwards {
  private readonly pending = new Set<Promise<void>>();

  /** Runs work that need not delay the answer; failures are logged, and Create waits for it (space). */
  run(work: () => Promise<void>, log: Logger, failure: string): void {
    const done: Promise<void> = work()
      .catch((err) => log.error({ err: describeError(err) }, failure))
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** Resolves once nothing is left running, including work started meanwhile. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }
}

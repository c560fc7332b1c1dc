import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { freezeFilesystem, thawFilesystem } from '../system/freeze.js';
import { SyscallError } from '../system/libc.js';
import { mountAt } from '../system/mountinfo.js';
import { shutdownMounted } from '../system/shutdown.js';

/** What the self-fence asks of the cluster. */
export interface FenceHooks {
  /** This agent's cluster volumes mounted now: name → mount point (from the kernel). */
  mounted(): Promise<Map<string, string>>;
  /** Whether ZooKeeper still names this agent owner of the copy's generation; throws when it cannot tell. */
  stillMine(name: string): Promise<boolean>;
  /**
   * Records the copy as fenced, for good (persisted): it is never served again as it is. `kind`:
   * 'lost' when the session was lost (the copy may be revived while ZooKeeper still names this
   * agent at its generation), 'stale' when its ownership was found moved (never revived).
   */
  fenced(name: string, reason: string, kind: FenceKind): Promise<void>;
  /** The session is lost: what it confirmed no longer holds. */
  lost(): void;
  /** One round trip to ZooKeeper through the session; resolves with the session's id. */
  probe(): Promise<string>;
}

export type FenceKind = 'lost' | 'stale';

/** What the fence does to a mounted filesystem (system/ by default; tests give their own). */
export interface FilesystemActions {
  freeze(mountPoint: string): Promise<void>;
  thaw(mountPoint: string): Promise<void>;
  shutdown(mountPoint: string): Promise<void>;
}

/** The thaws of what the kernel actions froze, by mount point: each holds the frozen directory open. */
const thaws = new Map<string, () => Promise<void>>();

/** Runs the thaw a freeze left (closing its directory), else thaws by path. */
async function thawAt(mountPoint: string): Promise<void> {
  const thaw = thaws.get(mountPoint);
  thaws.delete(mountPoint);
  await (thaw ? thaw() : thawFilesystem(mountPoint));
}

const KERNEL: FilesystemActions = {
  // The freeze checks that the directory is on the device mounted there (see freezeFilesystem).
  freeze: async (mountPoint) => {
    const mount = await mountAt(mountPoint);
    if (!mount) throw new Error(`${mountPoint} is not mounted: nothing to freeze`);
    thaws.set(mountPoint, await freezeFilesystem(mountPoint, mount.source));
  },
  thaw: thawAt,
  shutdown: async (mountPoint) => {
    await shutdownMounted(mountPoint);
    await thawAt(mountPoint).catch(() => undefined); // shut down: only the directory is left to close
  },
};

/** How often the watchdog looks, as a fraction of the session timeout. */
const TICKS_PER_TIMEOUT = 10;
/** Probes (a cheap read) per session timeout: the session is heard from at least this often. */
const PROBES_PER_TIMEOUT = 6;

/**
 * Self-fencing: an agent cut off from ZooKeeper stops writing its cluster volumes before another
 * agent may take them over. Time runs from the last probe ZooKeeper answered (sent at `lastHeard`;
 * ZooKeeper's own expiry clock for the session can only start later), by this process's monotonic
 * clock, not from the client's "disconnected" (node-zookeeper-client notices a silent partition
 * only when it reconnects):
 *   silence >= timeout/3: every mounted cluster volume is frozen (FIFREEZE): writers block;
 *     an answer from the same session then thaws each one still this agent's, the others are shut down;
 *   silence >= timeout (or the session reported expired): the session is taken as lost; every
 *     mounted cluster volume is shut down (EXT4_IOC_SHUTDOWN / XFS_IOC_GOINGDOWN) and recorded as
 *     fenced: writers fail with EIO; the copy stays as it was frozen.
 * A takeover waits for the session's expiry plus takeoverMarginMs, so both happen before it.
 * After a pause (SIGSTOP, a stalled VM) the watchdog's overdue timer runs before any I/O callback
 * (Node runs timers before polling), so the agent fences before it serves another request.
 */
export class SelfFence {
  private state: 'live' | 'frozen' | 'lost' = 'live';
  private lastHeard: number;
  private session: string | undefined;
  /** Volumes this fence froze (and so may thaw): name → mount point. */
  private readonly frozen = new Map<string, string>();
  private frozenAt = 0;
  private lostAt = 0;
  /** At start-up without ZooKeeper: frozen until it answers, never escalated by the clock. */
  private unverified = false;
  private probing = false;
  private timer: NodeJS.Timeout | undefined;
  /** Freezes, thaws and shutdowns run one after another, in the order decided. */
  private work: Promise<void> = Promise.resolve();

  constructor(
    private timeoutMs: number,
    private readonly hooks: FenceHooks,
    private readonly log: Logger,
    private readonly fs: FilesystemActions = KERNEL,
    /** A monotonic clock in ms: it runs on while the process is stopped. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.lastHeard = now();
  }

  /** Starts watching a verified session (`session` answered just now). */
  start(session: string | undefined): void {
    this.session = session;
    this.lastHeard = this.now();
    this.arm();
  }

  /** Starts without a session (ZooKeeper unreachable at start-up): freezes what is mounted now. */
  startUnverified(): Promise<void> {
    this.unverified = true;
    this.freezeAll('ZooKeeper did not answer at start-up');
    this.arm();
    return this.work;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Runs on another session timeout from now on (the one ZooKeeper negotiated). */
  useTimeout(timeoutMs: number): void {
    this.timeoutMs = timeoutMs;
    if (!this.timer) return;
    this.stop();
    this.arm();
  }

  /**
   * Whether the cluster's volumes may be mounted and served now. Evaluates the clock first: after
   * a pause, I/O callbacks (a request) may run before the watchdog's overdue timer.
   */
  servable(): boolean {
    this.evaluate();
    return this.state === 'live';
  }

  /** Milliseconds since ZooKeeper last answered. */
  silenceMs(): number {
    return Math.round(this.now() - this.lastHeard);
  }

  /**
   * Probes now and acts on the answer before resolving: the agent has just registered (its node
   * was missing, so probes failed and the fence may have frozen or lost), and it should serve
   * requests at once rather than at the next probe. Ignored before `start`: start-up verifies the
   * session itself. A failed probe changes nothing (the clock goes on).
   */
  async confirm(): Promise<void> {
    if (!this.timer) return;
    // An answer to a probe sent before the fence froze (or lost) does not revive it: the next
    // probe, sent after, does.
    for (let round = 0; round < 3; round++) {
      if (!(await this.probe())) return;
      await this.work;
      if (this.state === 'live') return;
    }
  }

  /** The session expired (as the client learns on reconnecting): ownership may have moved. */
  expired(): void {
    this.lose('the ZooKeeper session expired');
  }

  private arm(): void {
    this.timer = setInterval(() => this.tick(), Math.max(50, Math.floor(this.timeoutMs / TICKS_PER_TIMEOUT)));
    this.timer.unref();
  }

  private tick(): void {
    this.evaluate();
    if (!this.probing && this.silenceMs() >= this.timeoutMs / PROBES_PER_TIMEOUT) void this.probe();
  }

  /** Acts on the silence so far: freeze at a third of the timeout, lose the session at the timeout. */
  private evaluate(): void {
    const silence = this.silenceMs();
    if (!this.unverified && this.state !== 'lost' && silence >= this.timeoutMs) {
      this.lose(`ZooKeeper has not answered for ${silence} ms (session timeout ${this.timeoutMs} ms)`);
    } else if (this.state === 'live' && silence >= this.timeoutMs / 3) {
      this.freezeAll(`ZooKeeper has not answered for ${silence} ms`);
    }
  }

  /**
   * One round trip; resolves, once its answer is acted on, with whether ZooKeeper answered (a
   * failure is the clock's to judge).
   */
  private probe(): Promise<boolean> {
    const sentAt = this.now();
    this.probing = true;
    return this.hooks.probe().then(
      (session) => {
        this.probing = false;
        this.answered(sentAt, session);
        return true;
      },
      () => {
        this.probing = false;
        return false;
      },
    );
  }

  private answered(sentAt: number, session: string): void {
    this.evaluate(); // an answer to a probe sent before a pause must not hide the pause
    if (this.state === 'lost') {
      if (sentAt <= this.lostAt) return;
      // Live again once the shutdowns are recorded: a fenced copy must not be served meanwhile.
      this.queue(async () => {
        if (this.state !== 'lost') return;
        this.state = 'live';
        this.session = session;
        this.lastHeard = sentAt;
        this.log.warn('ZooKeeper answers again: fenced volumes stay fenced; other volumes are served');
      });
      return;
    }
    if (this.session !== undefined && session !== this.session) {
      this.lose('a new ZooKeeper session answered: the old one expired');
      return;
    }
    this.session = session;
    this.lastHeard = Math.max(this.lastHeard, sentAt);
    if (this.state === 'frozen' && sentAt > this.frozenAt) this.recover();
  }

  /** Writers block: reversible, while it is not known whether the session survives. */
  private freezeAll(reason: string): void {
    this.state = 'frozen';
    this.frozenAt = this.now();
    this.queue(async () => {
      for (const [name, mountPoint] of await this.hooks.mounted()) {
        if (this.frozen.has(name)) continue;
        try {
          await this.fs.freeze(mountPoint);
          this.frozen.set(name, mountPoint);
          this.log.warn(
            { volume: name, reason },
            'froze the volume: its writers wait until ZooKeeper answers',
          );
        } catch (err) {
          // EBUSY: frozen already. At start-up, by the previous process's fence: this fence
          // thaws it once ZooKeeper says it is ours. Else by a snapshot, which thaws it itself;
          // it is shut down if the session is lost.
          if (!(err instanceof SyscallError && err.code === 'EBUSY')) {
            this.log.error({ volume: name, err: (err as Error).message }, 'could not freeze the volume');
          } else if (this.unverified) this.frozen.set(name, mountPoint);
        }
      }
    });
  }

  /** The session answered again: thaw what is still ours, shut down what is not. */
  private recover(): void {
    this.state = 'live';
    this.unverified = false;
    this.queue(async () => {
      for (const [name, mountPoint] of [...this.frozen]) {
        let mine: boolean;
        try {
          mine = await this.hooks.stillMine(name);
        } catch (err) {
          this.log.warn(
            { volume: name, err: (err as Error).message },
            'cannot tell yet whether the volume is still ours: it stays frozen',
          );
          this.state = 'frozen';
          continue;
        }
        this.frozen.delete(name);
        if (mine) {
          await this.fs.thaw(mountPoint);
          this.log.info({ volume: name }, 'thawed the volume: ZooKeeper answers and it is still ours');
        } else {
          await this.shutDown(
            name,
            mountPoint,
            'stale: its ownership moved to another agent while this one was cut off',
            'stale',
          );
        }
      }
    });
  }

  /** The session is gone, and with it the right to write: every mounted volume is shut down. */
  private lose(reason: string): void {
    if (this.state === 'lost') return;
    this.state = 'lost';
    this.unverified = false;
    this.lostAt = this.now();
    this.hooks.lost();
    this.log.error({ reason }, 'ZooKeeper session lost: shutting down every mounted cluster volume');
    this.queue(async () => {
      const mounted = await this.hooks.mounted();
      for (const [name, mountPoint] of this.frozen) mounted.set(name, mountPoint);
      this.frozen.clear();
      await Promise.all(
        [...mounted].map(([name, mountPoint]) => this.shutDown(name, mountPoint, reason, 'lost')),
      );
    });
  }

  private async shutDown(name: string, mountPoint: string, reason: string, kind: FenceKind): Promise<void> {
    try {
      await this.fs.shutdown(mountPoint);
      this.log.error(
        { volume: name, reason },
        'shut the volume down: its writers fail with I/O errors; the copy is kept as it was and never served again as it is',
      );
    } catch (err) {
      this.log.error({ volume: name, err: (err as Error).message }, 'could not shut the volume down');
    }
    await this.hooks
      .fenced(name, reason, kind)
      .catch((err: Error) =>
        this.log.error({ volume: name, err: err.message }, 'could not record the fence'),
      );
  }

  private queue(step: () => Promise<void>): void {
    this.work = this.work
      .then(step)
      .catch((err: Error) => this.log.error({ err: err.message }, 'self-fencing step failed'));
  }
}

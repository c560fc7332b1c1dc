import type { Logger } from 'pino';
import type { Claim, ClusterGuard, CreatePlan } from '../core/cluster-guard.js';
import { VolumeError } from '../core/errors.js';
import type { Layout } from '../state/layout.js';
import { thawFilesystem } from '../system/freeze.js';
import { loadLibc } from '../system/libc.js';
import { shutdownMounted } from '../system/shutdown.js';
import { readClusterAuth } from './auth.js';
import { ClusterCopies } from './copies.js';
import { type ClusterOptions, effectiveTimeout, takeoverMarginMs } from './options.js';
import { type Ownership, parseOwnership, readCopy } from './ownership.js';
import { ZkSession, ZooKeeperDenied, ZooKeeperUnavailable } from './zk.js';

/** One volume as `loopvol ls --cluster` shows it. */
export interface ClusterVolume {
  name: string;
  owner: string;
  ownerAlive: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Volume ownership in ZooKeeper. Each agent holds an ephemeral node /ROOT/agents/<node-id> for
 * its session's life; each volume a persistent node /ROOT/volumes/<name> naming its owner and the
 * ownership's generation (the fencing token). A name whose owner's agent node is gone (dead, or
 * cut off longer than the session timeout) may be taken over after takeoverMarginMs, with a
 * versioned write that raises the generation, so that of two agents racing exactly one wins. A
 * local copy whose ownership or generation moved away is stale: kept untouched, never mounted.
 * While cut off, the agent fences itself (self-fence.ts).
 */
export class Cluster extends ClusterCopies implements ClusterGuard {
  /** Reads the credentials (a bad --cluster-auth-file stops the daemon) and prepares the session. */
  static async create(options: ClusterOptions, layout: Layout, log: Logger): Promise<Cluster> {
    const libc = await loadLibc();
    if (libc instanceof Error) {
      throw new Error(
        `--cluster needs the FFI (koffi) to shut a fenced volume's filesystem down, and it does not load here: ${libc.message}`,
      );
    }
    const auth = options.authFile ? await readClusterAuth(options.authFile) : undefined;
    let cluster: Cluster | undefined;
    const session = new ZkSession(
      options.connectString,
      options.timeoutMs,
      {
        onSession: () => (cluster ? cluster.register() : Promise.resolve()),
        onTimeout: (negotiatedMs) => cluster?.adoptTimeout(negotiatedMs),
        onExpired: () => cluster?.fence.expired(),
      },
      log,
      auth,
    );
    cluster = new Cluster(options, layout, session, log);
    return cluster;
  }

  /**
   * The service's start-up hook, before any request is served: joins (waiting up to the session
   * timeout), then shuts down every mounted copy whose ownership moved while this agent was away.
   * Without ZooKeeper the mounted copies are frozen until it answers and tells.
   */
  async startUp(names: () => readonly string[], log: Logger): Promise<void> {
    this.localNames = names;
    await Promise.all(
      names().map(async (name) => {
        const copy = await readCopy(this.layout.volume(name).dir);
        if (copy) this.copies.set(name, copy);
      }),
    );
    try {
      await this.session.open(this.options.timeoutMs);
      for (const [name, mountPoint] of await this.mountedVolumes()) {
        const current = await this.ownerOf(name);
        if (this.isMine(name, current)) {
          if (this.copies.get(name)?.fenced) continue; // shut down: nothing to thaw
          // The previous process's fence may have left it frozen; ZooKeeper just said it is ours.
          await thawFilesystem(mountPoint).catch((err: Error) =>
            log.error({ volume: name, err: err.message }, 'could not thaw the volume'),
          );
          continue;
        }
        try {
          await shutdownMounted(mountPoint);
          log.error(
            { volume: name },
            'shut down a mounted copy whose ownership moved while this agent was away: its writers fail with I/O errors',
          );
        } catch (err) {
          log.error({ volume: name, err: (err as Error).message }, 'could not shut the volume down');
        }
        if (current) await this.markStale(name, current, log);
      }
    } catch (err) {
      const unanswered = err instanceof ZooKeeperUnavailable || err instanceof ZooKeeperDenied;
      if (!(unanswered || err instanceof VolumeError)) throw err;
      log.error(
        { err: err.message },
        'cannot ask ZooKeeper whose the mounted volumes are: they are frozen until it answers',
      );
      await this.fence.startUnverified();
      return;
    }
    this.fence.start(this.session.sessionId());
  }

  /** Whether this agent may write the volume now (thaw it, serve it): live, the copy neither fenced nor stale. */
  writable(name: string): boolean {
    return this.fence.servable() && !this.copies.get(name)?.fenced && !this.stale.has(name);
  }

  close(): void {
    this.fence.stop();
    this.session.close();
  }

  /**
   * ZooKeeper clamps the session timeout to its own bounds. Shorter than asked, it would expire
   * the session (and let another agent take over) before the fence shuts down at the asked one:
   * the fence and the takeover margin run on the negotiated timeout instead.
   */
  private adoptTimeout(negotiatedMs: number): void {
    const timeoutMs = effectiveTimeout(this.timeoutMs, negotiatedMs, this.log);
    if (timeoutMs === this.timeoutMs) return;
    this.timeoutMs = timeoutMs;
    this.fence.useTimeout(timeoutMs);
  }

  /** At every new session: the agent's liveness node (after an expiry, a new one). */
  private async register(): Promise<void> {
    await this.session.mkdirp(this.agents);
    await this.session.mkdirp(`${this.options.root}/volumes`);
    const me = `${this.agents}/${this.options.nodeId}`;
    // A node left by this agent's previous session (a restart faster than the timeout) goes when
    // that session expires: wait for it rather than share an identity. Longer means another
    // daemon runs with this node id.
    const deadline = Date.now() + 3 * this.timeoutMs;
    while (!(await this.session.create(me, JSON.stringify({ since: new Date().toISOString() }), true))) {
      if (await this.session.ownsEphemeral(me)) {
        await this.fence.confirm(); // reconnected within the same session
        return;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `agent node ${me} stays: another daemon runs with node id ${this.options.nodeId}; give each agent its own --node-id`,
        );
      }
      await sleep(500);
    }
    // The fence counted the silence while the node was missing: served from now, not the next probe.
    await this.fence.confirm();
    this.log.info({ nodeId: this.options.nodeId }, 'joined the cluster');
  }

  async claimForCreate(
    name: string,
    fresh: boolean,
    log: Logger,
  ): Promise<{ plan: CreatePlan; claim: Claim }> {
    this.requireLive();
    const path = this.volumePath(name);
    const me = this.options.nodeId;
    /** The node version seen with its owner gone, once the takeover margin was waited out. */
    let waitedAt: number | undefined;
    for (;;) {
      const node = await this.guarded(() => this.session.read(path));
      if (!node) {
        // A name the cluster has never seen: a first deployment, created empty.
        const first: Ownership = { owner: me, since: new Date().toISOString(), generation: 1 };
        if (await this.guarded(() => this.session.create(path, JSON.stringify(first)))) {
          this.confirmed.set(name, first.generation);
          return { plan: 'empty', claim: this.undoCreate(name, path) };
        }
        continue;
      }
      const current = parseOwnership(path, node.data);
      if (current.owner !== me && (await this.alive(current.owner))) {
        throw new VolumeError(
          `volume ${name} lives on agent ${current.owner}, which is alive: use it there (or remove it there first)`,
          'conflict',
        );
      }
      if (current.owner !== me && !fresh && !this.options.restoreMissing) {
        throw new VolumeError(
          `volume ${name} belonged to agent ${current.owner}, which is gone: start loopvol with --restore-missing to restore its latest backup here, or create it empty with -o fresh=true`,
          'conflict',
        );
      }
      if (current.owner !== me && waitedAt !== node.version) {
        const margin = takeoverMarginMs(this.timeoutMs);
        log.info(
          { from: current.owner, marginMs: margin },
          "the volume's agent is gone: waiting out its self-fencing margin before taking it over",
        );
        await sleep(margin);
        waitedAt = node.version;
        continue;
      }
      // Every claim of a name this agent lacks makes a new copy: a new generation.
      const mine: Ownership = {
        owner: me,
        since: new Date().toISOString(),
        generation: current.generation + 1,
      };
      if (!(await this.guarded(() => this.session.replace(path, JSON.stringify(mine), node.version)))) {
        const winner = await this.guarded(() => this.session.read(path));
        throw new VolumeError(
          `volume ${name} was just taken over by agent ${winner ? parseOwnership(path, winner.data).owner : 'another agent'}`,
          'conflict',
        );
      }
      if (current.owner !== me) {
        log.warn(
          { from: current.owner, generation: mine.generation },
          'took over a volume whose agent is gone',
        );
      }
      this.confirmed.set(name, mine.generation);
      // Already ours but not here: never empty while a backup could bring the data back (an
      // empty volume's backups would carry a newer generation and push the real ones out).
      const plan: CreatePlan = fresh ? 'empty' : current.owner === me ? 'resume' : 'restore';
      return {
        plan,
        claim: {
          undo: async () => {
            this.confirmed.delete(name);
            const now = await this.session.read(path);
            if (now) await this.session.replace(path, node.data, now.version);
          },
        },
      };
    }
  }

  async checkMount(name: string, log: Logger): Promise<void> {
    this.requireLive();
    let node: { data: string; version: number } | undefined;
    try {
      node = await this.session.read(this.volumePath(name));
    } catch (err) {
      // A brief loss (under a third of the timeout, else the fence is not live): what this
      // session confirmed still mounts.
      if (err instanceof ZooKeeperUnavailable && this.confirmed.has(name)) return;
      throw this.unavailable(err);
    }
    await this.verify(name, node, log, true);
  }

  confirmMounted(name: string): void {
    this.requireLive();
    if (!this.writable(name)) {
      throw new VolumeError(
        `volume ${name} was fenced while it was being mounted: it is not served; see "loopvol inspect ${name}"`,
        'conflict',
      );
    }
  }

  async assertOwner(name: string, log: Logger): Promise<number> {
    this.requireLive();
    const node = await this.guarded(() => this.session.read(this.volumePath(name)));
    return this.verify(name, node, log, false);
  }

  generationOf(name: string): number | undefined {
    if (this.copies.get(name)?.fenced || this.stale.has(name)) return undefined;
    return this.confirmed.get(name);
  }

  async released(name: string, log: Logger): Promise<void> {
    this.confirmed.delete(name);
    this.copies.delete(name);
    if (this.stale.delete(name)) return; // the stale copy's removal does not touch the owner's record
    try {
      const path = this.volumePath(name);
      const node = await this.session.read(path);
      if (node && parseOwnership(path, node.data).owner === this.options.nodeId) {
        await this.session.remove(path, node.version);
      }
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        'could not release the name in ZooKeeper; it is released when taken over',
      );
    }
  }

  statusOf(name: string): Record<string, unknown> {
    const copy = this.copies.get(name);
    const owner = this.stale.get(name);
    return {
      owner: owner ?? this.options.nodeId,
      generation: this.confirmed.get(name) ?? copy?.generation ?? null,
      ...(owner ? { stale: true } : {}),
      ...(copy?.fenced ? { fenced: copy.fenced } : {}),
    };
  }

  /** Every volume the cluster knows, with its owner and whether that agent is alive. */
  async volumes(): Promise<ClusterVolume[]> {
    const names = await this.guarded(() => this.session.children(`${this.options.root}/volumes`));
    const live = new Set(await this.guarded(() => this.session.children(this.agents)));
    const found: ClusterVolume[] = [];
    for (const name of names.sort()) {
      const path = this.volumePath(name);
      const node = await this.guarded(() => this.session.read(path));
      if (!node) continue;
      const { owner } = parseOwnership(path, node.data);
      found.push({ name, owner, ownerAlive: live.has(owner) });
    }
    return found;
  }
}

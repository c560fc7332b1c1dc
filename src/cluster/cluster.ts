import type { Logger } from 'pino';
import type { Claim, ClusterGuard, CreatePlan } from '../core/cluster-guard.js';
import { VolumeError } from '../core/errors.js';
import type { Layout } from '../state/layout.js';
import { thawFilesystem } from '../system/freeze.js';
import { loadLibc } from '../system/libc.js';
import { readMounts } from '../system/mountinfo.js';
import { shutdownMounted } from '../system/shutdown.js';
import { readClusterAuth } from './auth.js';
import { type CopyState, type Ownership, parseOwnership, readCopy, writeCopy } from './ownership.js';
import { type FenceKind, SelfFence } from './self-fence.js';
import { ZkSession, ZooKeeperDenied, ZooKeeperUnavailable } from './zk.js';

/** Where the daemon joins (from --cluster zk://HOST:PORT[,HOST:PORT...]/PATH). */
export interface ClusterOptions {
  connectString: string;
  /** The root of loopvol's nodes, e.g. /loopvol. */
  root: string;
  /** This agent's name in the cluster (--node-id, default the host name). */
  nodeId: string;
  /** The session timeout: how long an agent may be gone before its volumes can be taken over. */
  timeoutMs: number;
  /** A Create of a name whose owner is gone restores its latest backup (--restore-missing). */
  restoreMissing: boolean;
  /** USER:PASSWORD for ZooKeeper's digest scheme (--cluster-auth-file); the nodes are that user's only. */
  authFile?: string;
}

/**
 * How long a takeover waits after it first sees the owner's agent node gone (its session expired):
 * the margin the old owner's self-fencing has, by its own clock, beyond the expiry to have shut
 * its copies down (it does at the timeout after its last answer, which is before the expiry).
 */
export function takeoverMarginMs(timeoutMs: number): number {
  return Math.ceil(timeoutMs / 2);
}

/** The timeout to run on: the negotiated one when ZooKeeper granted less than asked (logged). */
export function effectiveTimeout(requestedMs: number, negotiatedMs: number, log: Logger): number {
  if (negotiatedMs <= 0 || negotiatedMs >= requestedMs) return requestedMs;
  log.error(
    { requestedMs, negotiatedMs },
    `ZooKeeper granted a session timeout of ${negotiatedMs} ms, shorter than --cluster-timeout ${requestedMs} ms (its maxSessionTimeout): self-fencing runs on ${negotiatedMs} ms; raise maxSessionTimeout in zoo.cfg or lower --cluster-timeout`,
  );
  return negotiatedMs;
}

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
export class Cluster implements ClusterGuard {
  /** The session timeout in force: --cluster-timeout, or shorter if ZooKeeper negotiated less. */
  private timeoutMs: number;
  /** Local volumes confirmed as ours in this session, with their generation. */
  private readonly confirmed = new Map<string, number>();
  /** Local volumes whose ownership moved to another agent, and where to. */
  private readonly stale = new Map<string, string>();
  /** What each local copy's cluster.json says (read at start-up, kept as written). */
  private readonly copies = new Map<string, CopyState>();
  private readonly fence: SelfFence;
  private localNames: () => readonly string[] = () => [];

  private constructor(
    private readonly options: ClusterOptions,
    private readonly layout: Layout,
    private readonly session: ZkSession,
    private readonly log: Logger,
  ) {
    this.timeoutMs = options.timeoutMs;
    this.fence = new SelfFence(
      options.timeoutMs,
      {
        mounted: () => this.mountedVolumes(),
        stillMine: (name) => this.stillMine(name),
        fenced: (name, reason, kind) => this.recordFence(name, reason, kind),
        lost: () => this.confirmed.clear(),
        // The agent's own node: while it is missing (not registered in this session), others
        // take this agent for dead, so the fence must count the silence.
        probe: async () => {
          const me = `${this.agents}/${this.options.nodeId}`;
          if (!(await this.session.exists(me))) throw new Error(`agent node ${me} is not registered`);
          return this.session.sessionId() ?? '';
        },
      },
      log,
    );
  }

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

  private get agents() {
    return `${this.options.root}/agents`;
  }

  private volumePath(name: string) {
    return `${this.options.root}/volumes/${name}`;
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
      if (await this.session.ownsEphemeral(me)) return; // reconnected within the same session
      if (Date.now() > deadline) {
        throw new Error(
          `agent node ${me} stays: another daemon runs with node id ${this.options.nodeId}; give each agent its own --node-id`,
        );
      }
      await sleep(500);
    }
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

  /**
   * Whether the local copy is the owner's: the node names this agent, at the copy's generation,
   * and the copy is not fenced; else throws, naming the owner. A copy with no record yet (new, or
   * from before generations) adopts the node's generation. `revive`: a fenced copy that is still
   * the current generation (fenced while cut off, but nobody took over) and that nothing mounts
   * any more may be mounted again: nothing else wrote the volume meanwhile.
   */
  private async verify(
    name: string,
    found: { data: string; version: number } | undefined,
    log: Logger,
    revive: boolean,
  ): Promise<number> {
    const path = this.volumePath(name);
    let node = found;
    const copy = this.copies.get(name) ?? (await readCopy(this.layout.volume(name).dir));
    if (!node && copy?.fenced) {
      // The node is gone (the volume's owner removed it): a fenced copy has no owner to be
      // revived for, and recreating the node would serve an old copy as the volume.
      throw new VolumeError(
        `volume ${name} was fenced (${copy.fenced.reason}) and the cluster no longer knows it (removed by its owner?): this copy is not served again; remove it (loopvol rm ${name}) or keep it under another name (-o from=${name})`,
        'conflict',
      );
    }
    while (!node) {
      // A volume from before the cluster (or whose node was lost): it is this agent's.
      const mine: Ownership = {
        owner: this.options.nodeId,
        since: new Date().toISOString(),
        generation: (copy?.generation ?? 0) + 1,
      };
      if (!(await this.guarded(() => this.session.create(path, JSON.stringify(mine))))) {
        node = await this.guarded(() => this.session.read(path));
        continue;
      }
      await this.saveCopy(name, { ...copy, generation: mine.generation });
      node = { data: JSON.stringify(mine), version: 0 };
    }
    const current = parseOwnership(path, node.data);
    if (!this.isMine(name, current, copy)) throw await this.markStale(name, current, log);
    if (copy?.fenced) {
      if (copy.fenced.kind !== 'lost') {
        throw new VolumeError(
          `volume ${name} was fenced (${copy.fenced.reason}): this copy is never served again; remove it (loopvol rm ${name}) or keep it under another name (-o from=${name})`,
          'conflict',
        );
      }
      if (!revive) {
        throw new VolumeError(
          `volume ${name} was fenced (${copy.fenced.reason}): it is not backed up or served until it is mounted again`,
          'conflict',
        );
      }
      if ((await this.mountedVolumes()).has(name)) {
        throw new VolumeError(
          `volume ${name} was fenced (${copy.fenced.reason}) and its shut-down mount is still in use: stop the containers that use it so that it unmounts, then mount it again`,
          'conflict',
        );
      }
      log.warn(
        { reason: copy.fenced.reason, generation: current.generation },
        "this fenced copy is still the owner's current generation and nothing mounts it: serving it again",
      );
    }
    if (!copy || copy.fenced) await this.saveCopy(name, { generation: current.generation });
    this.confirmed.set(name, current.generation);
    this.stale.delete(name);
    return current.generation;
  }

  /**
   * Records a copy whose ownership or generation moved as fenced (logged once per daemon) and
   * returns the error that refuses it.
   */
  private async markStale(name: string, current: Ownership, log: Logger): Promise<VolumeError> {
    this.confirmed.delete(name);
    const moved = current.owner !== this.options.nodeId;
    const reason = moved
      ? `the volume now lives on agent ${current.owner} (generation ${current.generation})`
      : `the cluster's generation of the volume is ${current.generation}, not this copy's`;
    if (!this.stale.has(name)) {
      log.warn(
        { volume: name, owner: current.owner, generation: current.generation },
        `this copy of volume ${name} is stale: ${reason}; it is kept untouched and not mounted. Remove it (loopvol rm ${name}) or keep it under another name (docker volume create -d loopvol -o from=${name} ${name}-stale, then loopvol rm ${name})`,
      );
    }
    if (this.copies.get(name)?.fenced?.kind !== 'stale')
      await this.recordFence(name, `stale: ${reason}`, 'stale');
    this.stale.set(name, current.owner);
    return new VolumeError(
      moved
        ? `volume ${name} now lives on agent ${current.owner}: this agent's copy is stale and is not mounted (kept untouched: remove it with "loopvol rm ${name}" or copy it with -o from=${name})`
        : `volume ${name}: this agent's copy is stale (${reason}) and is not mounted (kept untouched: remove it with "loopvol rm ${name}" or copy it with -o from=${name})`,
      'conflict',
    );
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

  /** Refuses work on the cluster's volumes while this agent may be cut off (see SelfFence). */
  private requireLive(): void {
    if (this.fence.servable()) return;
    throw new VolumeError(
      `ZooKeeper has not answered for ${Math.round(this.fence.silenceMs() / 1000)} s: this agent's cluster volumes are frozen or fenced until it does (another agent may be taking them over); try again once it is back`,
      'conflict',
    );
  }

  /** What ZooKeeper says of the name now (throws when it cannot be asked). */
  private async ownerOf(name: string): Promise<Ownership | undefined> {
    const path = this.volumePath(name);
    const node = await this.session.read(path);
    return node ? parseOwnership(path, node.data) : undefined;
  }

  /**
   * Whether `current` names this agent owner at the copy's generation. No node: a volume from
   * before the cluster (its first Mount here records it); no copy record: it adopts the node's.
   */
  private isMine(name: string, current: Ownership | undefined, copy = this.copies.get(name)): boolean {
    if (!current) return true;
    return current.owner === this.options.nodeId && (!copy || copy.generation === current.generation);
  }

  /** For the self-fence: whether ZooKeeper still names this agent owner of the copy's generation. */
  private async stillMine(name: string): Promise<boolean> {
    return this.isMine(name, await this.ownerOf(name));
  }

  private async recordFence(name: string, reason: string, kind: FenceKind): Promise<void> {
    this.confirmed.delete(name);
    const copy = this.copies.get(name) ?? (await readCopy(this.layout.volume(name).dir));
    await this.saveCopy(name, {
      generation: copy?.generation ?? 0,
      fenced: { at: new Date().toISOString(), reason, kind },
    });
  }

  private async saveCopy(name: string, copy: CopyState): Promise<void> {
    this.copies.set(name, copy);
    await writeCopy(this.layout.volume(name).dir, copy);
  }

  /** This agent's volumes mounted now, from the kernel: name → mount point. */
  private async mountedVolumes(): Promise<Map<string, string>> {
    const mounts = new Set((await readMounts()).map((m) => m.mountPoint));
    const found = new Map<string, string>();
    for (const name of this.localNames()) {
      const { mountPoint } = this.layout.volume(name);
      if (mounts.has(mountPoint)) found.set(name, mountPoint);
    }
    return found;
  }

  private alive(agent: string): Promise<boolean> {
    return this.guarded(() => this.session.exists(`${this.agents}/${agent}`));
  }

  private undoCreate(name: string, path: string): Claim {
    return {
      undo: () => {
        this.confirmed.delete(name);
        return this.session.remove(path);
      },
    };
  }

  /** Runs a ZooKeeper operation, turning unreachability into the operator's error. */
  private async guarded<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private unavailable(err: unknown): Error {
    if (err instanceof ZooKeeperDenied) return new VolumeError(err.message, 'conflict');
    if (err instanceof ZooKeeperUnavailable) {
      return new VolumeError(
        `${err.message}: volumes already mounted keep working while it is brief`,
        'internal',
      );
    }
    return err as Error;
  }
}

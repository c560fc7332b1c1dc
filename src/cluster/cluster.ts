import type { Logger } from 'pino';
import type { Claim, ClusterGuard, CreatePlan } from '../core/cluster-guard.js';
import { VolumeError } from '../core/errors.js';
import { ZkSession, ZooKeeperUnavailable } from './zk.js';

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
}

/** What the cluster records of a volume: /ROOT/volumes/<name>. */
interface Ownership {
  owner: string;
  since: string;
}

/** One volume as `loopvol ls --cluster` shows it. */
export interface ClusterVolume {
  name: string;
  owner: string;
  ownerAlive: boolean;
}

/**
 * Volume ownership in ZooKeeper. Each agent holds an ephemeral node /ROOT/agents/<node-id> for
 * its session's life; each volume a persistent node /ROOT/volumes/<name> naming its owner. A name
 * whose owner's agent node is gone (dead, or cut off longer than the session timeout) may be taken
 * over, with a versioned write so that of two agents racing exactly one wins. A local copy whose
 * ownership moved away is stale: kept untouched, never mounted.
 */
export class Cluster implements ClusterGuard {
  private readonly session: ZkSession;
  /** Local volumes this session confirmed as ours: they mount while ZooKeeper is unreachable. */
  private readonly confirmed = new Set<string>();
  /** Local volumes whose ownership moved to another agent, and where to. */
  private readonly stale = new Map<string, string>();

  constructor(
    private readonly options: ClusterOptions,
    private readonly log: Logger,
  ) {
    this.session = new ZkSession(options.connectString, options.timeoutMs, () => this.register(), log);
  }

  private get agents() {
    return `${this.options.root}/agents`;
  }

  private volumePath(name: string) {
    return `${this.options.root}/volumes/${name}`;
  }

  /** Joins the ensemble (waits a while for it; volumes are served meanwhile regardless). */
  async join(): Promise<void> {
    await this.session.open(this.options.timeoutMs);
  }

  close(): void {
    this.session.close();
  }

  /** At every new session: the agent's liveness node (after an expiry, a new one). */
  private async register(): Promise<void> {
    await this.session.mkdirp(this.agents);
    await this.session.mkdirp(`${this.options.root}/volumes`);
    const me = `${this.agents}/${this.options.nodeId}`;
    // A node left by this agent's previous session (a restart faster than the timeout) goes when
    // that session expires: wait for it rather than share an identity. Longer means another
    // daemon runs with this node id.
    const deadline = Date.now() + 3 * this.options.timeoutMs;
    while (!(await this.session.create(me, JSON.stringify({ since: new Date().toISOString() }), true))) {
      if (Date.now() > deadline) {
        throw new Error(
          `agent node ${me} stays: another daemon runs with node id ${this.options.nodeId}; give each agent its own --node-id`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    this.log.info({ nodeId: this.options.nodeId }, 'joined the cluster');
  }

  /** Checks every local volume against the cluster: those owned elsewhere now are stale. */
  async fence(names: readonly string[], log: Logger): Promise<void> {
    for (const name of names) {
      try {
        await this.checkMount(name, log);
      } catch (err) {
        if (!(err instanceof VolumeError)) throw err;
      }
    }
  }

  async claimForCreate(
    name: string,
    fresh: boolean,
    log: Logger,
  ): Promise<{ plan: CreatePlan; claim: Claim }> {
    const path = this.volumePath(name);
    const mine: Ownership = { owner: this.options.nodeId, since: new Date().toISOString() };
    const node = await this.guarded(() => this.session.read(path));
    if (!node) {
      // A name the cluster has never seen: a first deployment, created empty.
      if (await this.guarded(() => this.session.create(path, JSON.stringify(mine)))) {
        return { plan: 'empty', claim: this.undoCreate(path) };
      }
      return this.claimForCreate(name, fresh, log);
    }
    const current = JSON.parse(node.data) as Ownership;
    if (current.owner !== this.options.nodeId && (await this.alive(current.owner))) {
      throw new VolumeError(
        `volume ${name} lives on agent ${current.owner}, which is alive: use it there (or remove it there first)`,
        409,
      );
    }
    if (current.owner !== this.options.nodeId && !fresh && !this.options.restoreMissing) {
      throw new VolumeError(
        `volume ${name} belonged to agent ${current.owner}, which is gone: start loopvol with --restore-missing to restore its latest backup here, or create it empty with -o fresh=true`,
        409,
      );
    }
    if (!(await this.guarded(() => this.session.replace(path, JSON.stringify(mine), node.version)))) {
      const winner = (await this.guarded(() => this.session.read(path)))?.data;
      throw new VolumeError(
        `volume ${name} was just taken over by agent ${winner ? (JSON.parse(winner) as Ownership).owner : 'another agent'}`,
        409,
      );
    }
    if (current.owner !== this.options.nodeId) {
      log.warn({ from: current.owner }, 'took over a volume whose agent is gone');
    }
    const plan: CreatePlan = fresh || current.owner === this.options.nodeId ? 'empty' : 'restore';
    return {
      plan,
      claim: {
        undo: async () => {
          const now = await this.session.read(path);
          if (now) await this.session.replace(path, node.data, now.version);
        },
      },
    };
  }

  async checkMount(name: string, log: Logger): Promise<void> {
    const path = this.volumePath(name);
    let node: { data: string; version: number } | undefined;
    try {
      node = await this.session.read(path);
    } catch (err) {
      if (err instanceof ZooKeeperUnavailable && this.confirmed.has(name)) return;
      throw this.unavailable(err);
    }
    if (!node) {
      // A volume from before the cluster: it is this agent's.
      const mine: Ownership = { owner: this.options.nodeId, since: new Date().toISOString() };
      if (await this.guarded(() => this.session.create(path, JSON.stringify(mine)))) {
        this.confirmed.add(name);
        return;
      }
      return this.checkMount(name, log);
    }
    const { owner } = JSON.parse(node.data) as Ownership;
    if (owner === this.options.nodeId) {
      this.confirmed.add(name);
      this.stale.delete(name);
      return;
    }
    this.confirmed.delete(name);
    if (!this.stale.has(name)) {
      log.warn(
        { volume: name, owner },
        `this copy of volume ${name} is stale: the volume now lives on agent ${owner}; it is kept untouched and not mounted. Remove it (loopvol rm ${name}) or keep it under another name (docker volume create -d loopvol -o from=${name} ${name}-stale, then loopvol rm ${name})`,
      );
    }
    this.stale.set(name, owner);
    throw new VolumeError(
      `volume ${name} now lives on agent ${owner}: this agent's copy is stale and is not mounted (kept untouched: remove it with "loopvol rm ${name}" or copy it with -o from=${name})`,
      409,
    );
  }

  async released(name: string, log: Logger): Promise<void> {
    this.confirmed.delete(name);
    if (this.stale.delete(name)) return; // the stale copy's removal does not touch the owner's record
    try {
      const node = await this.session.read(this.volumePath(name));
      if (node && (JSON.parse(node.data) as Ownership).owner === this.options.nodeId) {
        await this.session.remove(this.volumePath(name), node.version);
      }
    } catch (err) {
      log.warn(
        { err: (err as Error).message },
        'could not release the name in ZooKeeper; it is released when taken over',
      );
    }
  }

  statusOf(name: string): Record<string, unknown> {
    const owner = this.stale.get(name);
    return owner ? { stale: true, owner } : { owner: this.options.nodeId };
  }

  generationOf(_name: string): number | undefined {
    return undefined;
  }

  async assertOwner(name: string, log: Logger): Promise<number> {
    await this.checkMount(name, log);
    return 0;
  }

  /** Every volume the cluster knows, with its owner and whether that agent is alive. */
  async volumes(): Promise<ClusterVolume[]> {
    const names = await this.guarded(() => this.session.children(`${this.options.root}/volumes`));
    const live = new Set(await this.guarded(() => this.session.children(this.agents)));
    const found: ClusterVolume[] = [];
    for (const name of names.sort()) {
      const node = await this.guarded(() => this.session.read(this.volumePath(name)));
      if (!node) continue;
      const { owner } = JSON.parse(node.data) as Ownership;
      found.push({ name, owner, ownerAlive: live.has(owner) });
    }
    return found;
  }

  private alive(agent: string): Promise<boolean> {
    return this.guarded(() => this.session.exists(`${this.agents}/${agent}`));
  }

  private undoCreate(path: string): Claim {
    return { undo: () => this.session.remove(path) };
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
    if (err instanceof ZooKeeperUnavailable) {
      return new VolumeError(`${err.message}: volumes already mounted keep working`, 500);
    }
    return err as Error;
  }
}

import type { Logger } from 'pino';
import type { Claim } from '../core/cluster-guard.js';
import { VolumeError } from '../core/errors.js';
import type { Layout } from '../state/layout.js';
import { readMounts } from '../system/mountinfo.js';
import type { ClusterOptions } from './options.js';
import { type CopyState, type Ownership, parseOwnership, readCopy, writeCopy } from './ownership.js';
import { type FenceKind, SelfFence } from './self-fence.js';
import { type ZkSession, ZooKeeperDenied, ZooKeeperUnavailable } from './zk.js';

/**
 * What an agent knows of its local copies (confirmed, stale, fenced) and the decisions on them:
 * whether a copy is the owner's, marking it stale or fenced, and the ZooKeeper reads behind those.
 * Cluster (cluster.ts) adds the start-up and the guard's operations; the two are one object, split
 * only to keep each file readable.
 */
export abstract class ClusterCopies {
  /** The session timeout in force: --cluster-timeout, or shorter if ZooKeeper negotiated less. */
  protected timeoutMs: number;
  /** Local volumes confirmed as ours in this session, with their generation. */
  protected readonly confirmed = new Map<string, number>();
  /** Local volumes whose ownership moved to another agent, and where to. */
  protected readonly stale = new Map<string, string>();
  /** What each local copy's cluster.json says (read at start-up, kept as written). */
  protected readonly copies = new Map<string, CopyState>();
  protected readonly fence: SelfFence;
  protected localNames: () => readonly string[] = () => [];

  protected constructor(
    protected readonly options: ClusterOptions,
    protected readonly layout: Layout,
    protected readonly session: ZkSession,
    protected readonly log: Logger,
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

  protected get agents() {
    return `${this.options.root}/agents`;
  }

  protected volumePath(name: string) {
    return `${this.options.root}/volumes/${name}`;
  }

  /**
   * Whether the local copy is the owner's: the node names this agent, at the copy's generation,
   * and the copy is not fenced; else throws, naming the owner. A copy with no record yet (new, or
   * from before generations) adopts the node's generation. `revive`: a fenced copy that is still
   * the current generation (fenced while cut off, but nobody took over) and that nothing mounts
   * any more may be mounted again: nothing else wrote the volume meanwhile.
   */
  protected async verify(
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
  protected async markStale(name: string, current: Ownership, log: Logger): Promise<VolumeError> {
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

  /** Refuses work on the cluster's volumes while this agent may be cut off (see SelfFence). */
  protected requireLive(): void {
    if (this.fence.servable()) return;
    throw new VolumeError(
      `ZooKeeper has not answered for ${Math.round(this.fence.silenceMs() / 1000)} s: this agent's cluster volumes are frozen or fenced until it does (another agent may be taking them over); try again once it is back`,
      'conflict',
    );
  }

  /** What ZooKeeper says of the name now (throws when it cannot be asked). */
  protected async ownerOf(name: string): Promise<Ownership | undefined> {
    const path = this.volumePath(name);
    const node = await this.session.read(path);
    return node ? parseOwnership(path, node.data) : undefined;
  }

  /**
   * Whether `current` names this agent owner at the copy's generation. No node: a volume from
   * before the cluster (its first Mount here records it); no copy record: it adopts the node's.
   */
  protected isMine(name: string, current: Ownership | undefined, copy = this.copies.get(name)): boolean {
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
  protected async mountedVolumes(): Promise<Map<string, string>> {
    const mounts = new Set((await readMounts()).map((m) => m.mountPoint));
    const found = new Map<string, string>();
    for (const name of this.localNames()) {
      const { mountPoint } = this.layout.volume(name);
      if (mounts.has(mountPoint)) found.set(name, mountPoint);
    }
    return found;
  }

  protected alive(agent: string): Promise<boolean> {
    return this.guarded(() => this.session.exists(`${this.agents}/${agent}`));
  }

  protected undoCreate(name: string, path: string): Claim {
    return {
      undo: () => {
        this.confirmed.delete(name);
        return this.session.remove(path);
      },
    };
  }

  /** Runs a ZooKeeper operation, turning unreachability into the operator's error. */
  protected async guarded<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  protected unavailable(err: unknown): Error {
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

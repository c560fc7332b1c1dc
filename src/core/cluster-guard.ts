import type { Logger } from 'pino';

/**
 * What a Create of a name this agent does not have will do, as the cluster decides it. `resume`:
 * the name is already this agent's (a Create killed before it finished, a takeover among them,
 * or a data root lost): restore the latest backup if there is one, else create it empty.
 */
export type CreatePlan = 'empty' | 'restore' | 'resume';

/** A claim made before a Create, undone if the Create fails. */
export interface Claim {
  undo(): Promise<void>;
}

/**
 * The cluster's say over one agent's volumes (see cluster/cluster.ts): which agent owns a name,
 * so that no two agents ever write the same volume. The volume service asks it; without
 * --cluster there is none and nothing changes.
 */
export interface ClusterGuard {
  /**
   * Before a Create of a name this agent does not have: claims the name (throws, naming the owner,
   * when another live agent has it) and says whether to restore the name's latest backup.
   */
  claimForCreate(name: string, fresh: boolean, log: Logger): Promise<{ plan: CreatePlan; claim: Claim }>;
  /** Before a Mount of a local volume: throws when this agent's copy is not the owner's. */
  checkMount(name: string, log: Logger): Promise<void>;
  /**
   * After the Mount's activation, before it is recorded: throws when the agent stopped being live
   * or the copy was fenced meanwhile (the fence looked at the mounts before this one appeared).
   * The fence marks itself not live before it reads the mounts: a mount confirmed while live is
   * one its next freeze or shutdown sees.
   */
  confirmMounted(name: string): void;
  /** After a Remove: the name is free in the cluster. */
  released(name: string, log: Logger): Promise<void>;
  /** Status fields: the owner, the copy's generation, whether it is stale, and its fence if any. */
  statusOf(name: string): Record<string, unknown>;
  /**
   * The fencing token of a volume this agent owns: the ownership generation held in ZooKeeper,
   * raised by every takeover. Undefined when not known (never confirmed in this session).
   */
  generationOf(name: string): number | undefined;
  /**
   * Before work that writes on the volume's behalf (a backup): resolves with the current
   * generation when this agent is the owner now (asked of ZooKeeper), else throws a VolumeError
   * naming the owner. A fenced or stale copy never passes.
   */
  assertOwner(name: string, log: Logger): Promise<number>;
}

import zookeeper, { type ACL, type Client, type Stat } from 'node-zookeeper-client';
import type { Logger } from 'pino';
import { type ClusterAuth, digestId } from './auth.js';
import { retryWithBackoff } from './retry.js';

/** ZooKeeper cannot be reached now (down, or this agent cut off): the operation was not done. */
export class ZooKeeperUnavailable extends Error {}

/** ZooKeeper refused the operation: the node's ACL is for an identity this session does not have. */
export class ZooKeeperDenied extends Error {}

/** How long one ZooKeeper operation may take before it counts as unreachable. */
const OPERATION_TIMEOUT_MS = 3_000;

/** What a session calls back. */
export interface SessionEvents {
  /** At every new session (the first, and after an expiry): re-create ephemeral nodes. */
  onSession(): Promise<void>;
  /** The session expired: everything it held (ephemeral nodes, hence ownership) may be gone. */
  onExpired(): void;
  /** At every connection: the session timeout ZooKeeper granted (clamped to its bounds). */
  onTimeout?(negotiatedMs: number): void;
}

/**
 * A session with a ZooKeeper ensemble that survives its own expiry: when ZooKeeper expires the
 * session (this agent cut off, or ZooKeeper down, for longer than the timeout), a new session is
 * opened and `onSession` runs again (to re-create ephemeral nodes). Operations fail fast with
 * ZooKeeperUnavailable while there is no connection, rather than waiting for one. With `auth`,
 * the session proves loopvol's digest identity and every node it creates is that identity's only.
 */
export class ZkSession {
  private client: Client | undefined;
  private connected = false;
  private closed = false;
  /** The client whose session `onSession` is being run for (one run at a time). */
  private registering: Client | undefined;
  /** While disconnected: renews the session if the client has not got it back in time (see renewLater). */
  private renewal: NodeJS.Timeout | undefined;
  private readonly ownAcl: ACL[];

  constructor(
    private readonly connectString: string,
    private readonly sessionTimeoutMs: number,
    private readonly events: SessionEvents,
    private readonly log: Logger,
    private readonly auth?: ClusterAuth,
  ) {
    this.ownAcl = auth
      ? [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', digestId(auth)))]
      : [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
  }

  /** The current session's id (hex), or undefined before the first connection. */
  sessionId(): string | undefined {
    return this.connected ? this.client?.getSessionId().toString('hex') : undefined;
  }

  /** Opens the first session; resolves once connected (or rejects after `waitMs`). */
  async open(waitMs: number): Promise<void> {
    this.connect();
    const deadline = Date.now() + waitMs;
    while (!this.connected) {
      if (Date.now() > deadline)
        throw new ZooKeeperUnavailable(`cannot reach ZooKeeper at ${this.connectString}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.renewal);
    this.client?.close();
  }

  private connect(): void {
    const client = zookeeper.createClient(this.connectString, {
      sessionTimeout: this.sessionTimeoutMs,
      spinDelay: 500,
      retries: 0,
    });
    this.client = client;
    if (this.auth) client.addAuthInfo('digest', Buffer.from(`${this.auth.user}:${this.auth.password}`));
    // A client replaced by renew() may still report on its way out: only the current one counts.
    client.on('connected', () => {
      if (this.client !== client) return;
      this.connected = true;
      clearTimeout(this.renewal);
      this.renewal = undefined;
      this.log.info({ zookeeper: this.connectString }, 'connected to ZooKeeper');
      this.events.onTimeout?.(client.getSessionTimeout());
      void this.register(client);
    });
    client.on('disconnected', () => {
      if (this.client !== client) return;
      this.connected = false;
      this.log.warn('lost ZooKeeper: creates and takeovers wait for it; volumes freeze if it stays away');
      this.renewLater(client);
    });
    client.on('expired', () => this.renew(client, 'ZooKeeper session expired: opening a new one'));
    client.on('authenticationFailed', () =>
      this.log.error(
        { zookeeper: this.connectString },
        'ZooKeeper refused the credentials of --cluster-auth-file: check USER:PASSWORD',
      ),
    );
    client.connect();
  }

  /**
   * node-zookeeper-client reconnects on its own, but it can stay away for good: once its socket
   * connects it waits for the server's answer without a timeout (a server that accepted the
   * connection while starting or stopping may never answer), and a server that lost the newest
   * transactions refuses it over and over. Disconnected for longer than the session timeout, the
   * session is expired (or about to be) on ZooKeeper's side anyway: open a new one.
   */
  private renewLater(client: Client): void {
    if (this.renewal) return;
    this.renewal = setTimeout(() => {
      this.renewal = undefined;
      if (this.connected || this.client !== client) return;
      this.renew(
        client,
        'ZooKeeper did not take this agent back within the session timeout: opening a new session',
      );
    }, client.getSessionTimeout() || this.sessionTimeoutMs);
    this.renewal.unref();
  }

  /** The session is gone: what it held may be another agent's now; a new client makes a new one. */
  private renew(client: Client, why: string): void {
    if (this.closed || this.client !== client) return;
    this.connected = false;
    clearTimeout(this.renewal);
    this.renewal = undefined;
    this.log.warn(why);
    this.events.onExpired();
    client.close();
    this.connect();
    // The new client may hang in its first handshake just the same, and then says nothing.
    if (this.client) this.renewLater(this.client);
  }

  /**
   * Runs `onSession` for the client's session until it succeeds: nothing else would retry it
   * (the session may well stay connected), and meanwhile others take this agent for dead.
   */
  private async register(client: Client): Promise<void> {
    if (this.registering === client) return; // a reconnect while the first run still tries
    this.registering = client;
    await retryWithBackoff(
      () => this.events.onSession(),
      // Unregistered, the agent counts as dead to the others: retry within a session timeout.
      {
        firstMs: Math.min(1_000, this.sessionTimeoutMs / 4),
        maxMs: Math.min(30_000, Math.max(1_000, this.sessionTimeoutMs)),
      },
      () => !this.closed && this.client === client,
      (err, nextInMs) =>
        this.log.error(
          { err: err.message, retryInMs: nextInMs },
          'could not register with ZooKeeper; retrying',
        ),
    );
    if (this.registering === client) this.registering = undefined;
  }

  private call<T>(
    what: string,
    op: (client: Client, done: (err: unknown, value?: T) => void) => void,
  ): Promise<T> {
    const client = this.client;
    if (!client || !this.connected) {
      return Promise.reject(
        new ZooKeeperUnavailable(`ZooKeeper is unreachable (${what}): try again once it is back`),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new ZooKeeperUnavailable(`ZooKeeper did not answer (${what}): try again once it is back`)),
        OPERATION_TIMEOUT_MS,
      );
      op(client, (err, value) => {
        clearTimeout(timer);
        if (isCode(err, zookeeper.Exception.NO_AUTH)) {
          reject(
            new ZooKeeperDenied(
              `ZooKeeper refused loopvol (${what}): the node belongs to another identity; check --cluster-auth-file (docs/mesos.md)`,
            ),
          );
        } else if (
          isCode(err, zookeeper.Exception.CONNECTION_LOSS) ||
          isCode(err, zookeeper.Exception.SESSION_EXPIRED)
        ) {
          // The connection dropped with the operation in flight: unreachable, like no connection.
          reject(new ZooKeeperUnavailable(`ZooKeeper is unreachable (${what}): try again once it is back`));
        } else if (err) reject(err);
        else resolve(value as T);
      });
    });
  }

  /** The node's data and version, or undefined when it does not exist. */
  async read(path: string): Promise<{ data: string; version: number } | undefined> {
    try {
      return await this.call<{ data: string; version: number }>(`read ${path}`, (c, done) =>
        c.getData(path, (err, data: Buffer, stat: Stat) =>
          done(err, err ? undefined : { data: data?.toString('utf8') ?? '', version: stat.version }),
        ),
      );
    } catch (err) {
      if (isCode(err, zookeeper.Exception.NO_NODE)) return undefined;
      throw err;
    }
  }

  /** Whether `path` is an ephemeral node of this very session (a reconnect that kept the session). */
  async ownsEphemeral(path: string): Promise<boolean> {
    const session = this.client?.getSessionId();
    return this.call<boolean>(`exists ${path}`, (c, done) =>
      c.exists(path, (err, stat) => done(err, Boolean(stat && session?.equals(stat.ephemeralOwner)))),
    );
  }

  async exists(path: string): Promise<boolean> {
    return this.call<boolean>(`exists ${path}`, (c, done) =>
      c.exists(path, (err, stat) => done(err, Boolean(stat))),
    );
  }

  /** Creates the node; false when it already exists (someone else was first). */
  async create(path: string, data: string, ephemeral = false): Promise<boolean> {
    try {
      const mode = ephemeral ? zookeeper.CreateMode.EPHEMERAL : zookeeper.CreateMode.PERSISTENT;
      await this.call(`create ${path}`, (c, done) =>
        c.create(path, Buffer.from(data), this.ownAcl, mode, (err) => done(err)),
      );
      return true;
    } catch (err) {
      if (isCode(err, zookeeper.Exception.NODE_EXISTS)) return false;
      throw err;
    }
  }

  /** Replaces the data if the node is still at `version`; false when someone changed it first. */
  async replace(path: string, data: string, version: number): Promise<boolean> {
    try {
      await this.call(`write ${path}`, (c, done) =>
        c.setData(path, Buffer.from(data), version, (err) => done(err)),
      );
      return true;
    } catch (err) {
      if (isCode(err, zookeeper.Exception.BAD_VERSION) || isCode(err, zookeeper.Exception.NO_NODE))
        return false;
      throw err;
    }
  }

  async remove(path: string, version = -1): Promise<void> {
    try {
      await this.call(`remove ${path}`, (c, done) => c.remove(path, version, (err) => done(err)));
    } catch (err) {
      if (!isCode(err, zookeeper.Exception.NO_NODE)) throw err;
    }
  }

  /** The node's ACL as scheme:id entries. */
  async acl(path: string): Promise<string[]> {
    return this.call<string[]>(`read the ACL of ${path}`, (c, done) =>
      c.getACL(path, (err, acls) =>
        done(
          err,
          acls?.map((a) => `${a.id.scheme}:${a.id.id}`),
        ),
      ),
    );
  }

  async children(path: string): Promise<string[]> {
    return this.call<string[]>(`list ${path}`, (c, done) =>
      c.getChildren(path, (err, names) => done(err, names)),
    );
  }

  async mkdirp(path: string): Promise<void> {
    await this.call(`create ${path}`, (c, done) =>
      c.mkdirp(path, Buffer.alloc(0), this.ownAcl, zookeeper.CreateMode.PERSISTENT, (err) => done(err)),
    );
  }
}

function isCode(err: unknown, code: number): boolean {
  return (
    typeof (err as { getCode?: () => number })?.getCode === 'function' &&
    (err as { getCode(): number }).getCode() === code
  );
}

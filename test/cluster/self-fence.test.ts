import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FenceHooks, type FilesystemActions, SelfFence } from '../../src/cluster/self-fence.js';
import { SyscallError } from '../../src/system/libc.js';

const T = 3_000;
const log = pino({ level: 'silent' });

/** A fence over one mounted volume, a hand-driven clock and ZooKeeper, and recorded fs actions. */
function setUp(fs: Partial<FilesystemActions> = {}) {
  let clock = 0;
  const actions: string[] = [];
  const zk = { answers: true, session: 's1', mine: true };
  const hooks: FenceHooks = {
    mounted: async () => new Map([['pg', '/mnt/pg']]),
    stillMine: async () => zk.mine,
    fenced: async (name, _reason, kind) => {
      actions.push(`fenced ${name}${kind === 'stale' ? ' stale' : ''}`);
    },
    lost: () => {
      actions.push('lost');
    },
    probe: () => (zk.answers ? Promise.resolve(zk.session) : Promise.reject(new Error('unreachable'))),
  };
  const record = (what: string) => async (mountPoint: string) => {
    actions.push(`${what} ${mountPoint}`);
  };
  const fence = new SelfFence(
    T,
    hooks,
    log,
    { freeze: record('freeze'), thaw: record('thaw'), shutdown: record('shutdown'), ...fs },
    () => clock,
  );
  /** Lets time pass as the event loop would: the watchdog's timer fires along the way. */
  const pass = async (ms: number) => {
    for (let step = 0; step < ms; step += 100) {
      clock += 100;
      await vi.advanceTimersByTimeAsync(100);
    }
  };
  return {
    fence,
    zk,
    actions,
    pass,
    jump: (ms: number) => {
      clock += ms;
    },
  };
}

describe('self-fencing, by the clock', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps serving while ZooKeeper answers', async () => {
    const { fence, actions, pass } = setUp();
    fence.start('s1');
    await pass(3 * T);
    expect(actions).toEqual([]);
    expect(fence.servable()).toBe(true);
  });

  it('freezes at a third of the timeout and shuts down at the timeout', async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    expect(actions).toEqual(['freeze /mnt/pg']);
    expect(fence.servable()).toBe(false);
    await pass(T);
    expect(actions).toEqual(['freeze /mnt/pg', 'lost', 'shutdown /mnt/pg', 'fenced pg']);
    // Heard again (a new session): served again, the fenced copy stays fenced.
    zk.answers = true;
    zk.session = 's2';
    await pass(T);
    expect(fence.servable()).toBe(true);
    expect(actions).toEqual(['freeze /mnt/pg', 'lost', 'shutdown /mnt/pg', 'fenced pg']);
  });

  it('thaws when the same session answers in time and the volume is still ours', async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    zk.answers = true;
    await pass(T);
    expect(actions).toEqual(['freeze /mnt/pg', 'thaw /mnt/pg']);
    expect(fence.servable()).toBe(true);
  });

  it('shuts down instead of thawing when the volume is no longer ours', async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    zk.answers = true;
    zk.mine = false;
    await pass(T / 2);
    expect(actions).toEqual(['freeze /mnt/pg', 'shutdown /mnt/pg', 'fenced pg stale']);
  });

  it('takes an answer from another session as the old one expired', async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    zk.answers = true;
    zk.session = 's2';
    await pass(T / 2);
    expect(actions).toEqual(['freeze /mnt/pg', 'lost', 'shutdown /mnt/pg', 'fenced pg']);
  });

  it('after a pause past the timeout, refuses to serve before any timer has run', async () => {
    const { fence, actions, jump, pass } = setUp();
    fence.start('s1');
    jump(2 * T); // stopped: the clock ran on, no timer fired, no callback ran
    expect(fence.servable()).toBe(false);
    await pass(100);
    expect(actions).toEqual(['lost', 'shutdown /mnt/pg', 'fenced pg']);
  });

  it('reported expiry shuts down at once', async () => {
    const { fence, actions, pass } = setUp();
    fence.start('s1');
    fence.expired();
    expect(fence.servable()).toBe(false);
    await pass(100);
    expect(actions).toEqual(['lost', 'shutdown /mnt/pg', 'fenced pg']);
  });

  it('started without ZooKeeper: frozen, never shut down by the clock, thawed once it says ours', async () => {
    const { fence, zk, actions, pass } = setUp();
    zk.answers = false;
    await fence.startUnverified();
    await pass(3 * T);
    expect(actions).toEqual(['freeze /mnt/pg']);
    expect(fence.servable()).toBe(false);
    zk.answers = true;
    await pass(T / 2);
    expect(actions).toEqual(['freeze /mnt/pg', 'thaw /mnt/pg']);
    expect(fence.servable()).toBe(true);
  });

  it('started without ZooKeeper over a volume the previous process left frozen: thaws it once it says ours', async () => {
    const { fence, zk, actions, pass } = setUp({
      freeze: async () => {
        throw new SyscallError('ioctl', 'EBUSY', 16);
      },
    });
    zk.answers = false;
    await fence.startUnverified();
    expect(fence.servable()).toBe(false);
    zk.answers = true;
    await pass(T / 2);
    expect(actions).toEqual(['thaw /mnt/pg']);
    expect(fence.servable()).toBe(true);
  });

  it('a volume frozen by someone else (a snapshot) while live is not thawed by the fence', async () => {
    const { fence, zk, actions, pass } = setUp({
      freeze: async () => {
        throw new SyscallError('ioctl', 'EBUSY', 16);
      },
    });
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    zk.answers = true;
    await pass(T / 2);
    expect(actions).toEqual([]);
    expect(fence.servable()).toBe(true);
  });

  it("after the agent's registration a probe at once: served now, not at the next probe", async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    zk.answers = false; // the agent node is missing until the registration makes it
    await pass(T + 200);
    expect(fence.servable()).toBe(false);
    zk.answers = true;
    zk.session = 's2';
    await fence.confirm();
    expect(fence.servable()).toBe(true);
    expect(actions).toEqual(['freeze /mnt/pg', 'lost', 'shutdown /mnt/pg', 'fenced pg']);
  });

  it('a confirmation before the fence starts is left to start-up, and a failed one changes nothing', async () => {
    const { fence, zk, actions, jump, pass } = setUp();
    jump(2 * T);
    await fence.confirm();
    expect(actions).toEqual([]);
    fence.start('s1');
    zk.answers = false;
    await pass(T / 3 + 200);
    await fence.confirm();
    expect(fence.servable()).toBe(false);
  });

  it('runs on a shorter negotiated timeout once told', async () => {
    const { fence, zk, actions, pass } = setUp();
    fence.start('s1');
    fence.useTimeout(T / 2);
    zk.answers = false;
    await pass(T / 6 + 200);
    expect(actions).toEqual(['freeze /mnt/pg']);
    await pass(T / 2);
    expect(actions).toEqual(['freeze /mnt/pg', 'lost', 'shutdown /mnt/pg', 'fenced pg']);
  });
});

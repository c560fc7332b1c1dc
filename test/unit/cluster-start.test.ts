import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Cluster } from '../../src/cluster/cluster.js';
import { effectiveTimeout } from '../../src/cluster/options.js';
import { retryWithBackoff } from '../../src/cluster/retry.js';
import { Layout } from '../../src/state/layout.js';

const libcError = vi.hoisted(() => ({ value: undefined as Error | undefined }));
vi.mock('../../src/system/libc.js', async (original) => {
  const real = await original<typeof import('../../src/system/libc.js')>();
  return { ...real, loadLibc: async () => libcError.value ?? real.loadLibc() };
});

/** A logger whose lines land in `lines`. */
function capture() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { lines, log };
}

describe('the negotiated session timeout', () => {
  it('runs on what ZooKeeper granted when it is shorter than asked, and says so', () => {
    const { lines, log } = capture();
    expect(effectiveTimeout(60_000, 40_000, log)).toBe(40_000);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toMatch(/40000 ms, shorter than --cluster-timeout 60000 ms/);
  });

  it('keeps the asked timeout when granted as much or more', () => {
    const { lines, log } = capture();
    expect(effectiveTimeout(10_000, 10_000, log)).toBe(10_000);
    expect(effectiveTimeout(10_000, 20_000, log)).toBe(10_000);
    expect(lines).toEqual([]);
  });
});

describe('retrying with backoff', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('retries until the operation succeeds, waiting longer each time up to the cap', async () => {
    let calls = 0;
    const waits: number[] = [];
    const done = retryWithBackoff(
      async () => {
        calls += 1;
        if (calls < 5) throw new Error('NODE_EXISTS');
      },
      { firstMs: 1_000, maxMs: 4_000 },
      () => true,
      (_err, next) => waits.push(next),
    );
    await vi.advanceTimersByTimeAsync(20_000);
    await expect(done).resolves.toBe(true);
    expect(calls).toBe(5);
    expect(waits).toEqual([1_000, 2_000, 4_000, 4_000]);
  });

  it('gives up once no longer wanted (the session it was for is gone)', async () => {
    let wanted = true;
    const done = retryWithBackoff(
      async () => {
        throw new Error('unreachable');
      },
      { firstMs: 1_000, maxMs: 4_000 },
      () => wanted,
      () => undefined,
    );
    await vi.advanceTimersByTimeAsync(3_000);
    wanted = false;
    await vi.advanceTimersByTimeAsync(5_000);
    await expect(done).resolves.toBe(false);
  });
});

describe('cluster mode without the FFI', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'loopvol-cluster-ffi-'));
  });
  afterEach(async () => {
    libcError.value = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to start, saying why', async () => {
    libcError.value = new Error('koffi does not load');
    const options = {
      connectString: '127.0.0.1:1',
      root: '/loopvol',
      nodeId: 'a',
      timeoutMs: 3_000,
      restoreMissing: false,
    };
    await expect(
      Cluster.create(options, new Layout(join(dir, 'data'), join(dir, 'mnt')), pino({ level: 'silent' })),
    ).rejects.toThrow(/--cluster needs the FFI \(koffi\).*koffi does not load/);
  });
});

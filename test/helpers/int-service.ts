import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { DiskBackend } from '../../src/backend/disk.js';
import { LoopBackend } from '../../src/backend/loop.js';
import type { SpecDefaults } from '../../src/core/options.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import { selectKernelOps } from '../../src/system/kernel-ops.js';
import { loadLibc } from '../../src/system/libc.js';
import { VolumeService, type VolumeServiceDeps } from '../../src/volume/service.js';
import { silentLog } from './int-log.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from './kernel.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** As the daemon picks them: system calls, or the tools with LOOPVOL_SYSCALLS=tools. */
export const testKernelOps = (await selectKernelOps()).ops;

/** The FFI, as the daemon passes it to its spare pool (ext4 templates need it). */
export const testLibc = await loadLibc().then((l) => (l instanceof Error ? undefined : l));

/** Small enough to format in milliseconds, large enough for ext4. */
export const TEST_DEFAULTS: SpecDefaults = { sizeBytes: 64 * MiB, fs: 'ext4' };

/** What a test may wire into a service beyond its store and backends. */
export type ServiceExtras = Pick<VolumeServiceDeps, 'cluster' | 'clones'>;

/**
 * A VolumeService over `root` as the daemon builds it, with `diskPool` for disk volumes and
 * `mountRoot` as --mount-root. A second call over the same root is a plugin restart.
 */
export function openService(
  root: string,
  log: Logger = silentLog,
  defaults = TEST_DEFAULTS,
  diskPool: string[] = [],
  mountRoot = '',
  extras: ServiceExtras = {},
): VolumeService {
  return new VolumeService({
    store: new Store(new Layout(root, mountRoot)),
    backends: { loop: new LoopBackend(testKernelOps), disk: new DiskBackend(diskPool, testKernelOps, log) },
    defaults,
    log,
    ...extras,
  });
}

/** One test's own data root inside the file's temp dir, so a failed test cannot leak into the next. */
export interface Case {
  dir: string;
  root: string;
  layout: Layout;
}

export async function newCase(parent: string): Promise<Case> {
  const dir = await mkdtemp(join(parent, 'case-'));
  const root = join(dir, 'root');
  return { dir, root, layout: new Layout(root) };
}

/**
 * Releases whatever the case left in the kernel and deletes it, then fails if anything had been
 * left: the test was expected to have unmounted and detached everything through the service.
 */
export async function endCase(c: Case | undefined): Promise<void> {
  if (!c) return;
  const left = await kernelStateUnder(c.dir);
  await cleanupTempDir(c.dir);
  expect(left, 'mounts or loop devices left behind by the test').toEqual({ mounts: [], loops: [] });
}

/**
 * Registers the hooks of a describe block whose tests each get a fresh case: a temp dir for the
 * file, a case per test checked and cleaned in afterEach. Returns the function that opens a case.
 */
export function serviceCases(
  label: string,
): (extras?: ServiceExtras) => Promise<Case & { service: VolumeService }> {
  let dir: string | undefined;
  let current: Case | undefined;
  beforeAll(async () => {
    dir = await makeTempDir(label);
  });
  afterEach(async () => {
    const done = current;
    current = undefined;
    await endCase(done);
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });
  return async (extras = {}) => {
    if (!dir) throw new Error('serviceCases: temp dir not made yet');
    current = await newCase(dir);
    return { ...current, service: openService(current.root, silentLog, TEST_DEFAULTS, [], '', extras) };
  };
}

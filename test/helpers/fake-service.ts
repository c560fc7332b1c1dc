import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach } from 'vitest';
import type { SpecDefaults } from '../../src/core/options.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import { VolumeService, type VolumeServiceDeps } from '../../src/volume/service.js';
import { FakeBackend, FakeKernel } from './fake-backend.js';
import { silentLog } from './int-log.js';

const MiB = 1024 * 1024;

/** Small sizes: the fake writes only a sparse file, but the option rules still apply. */
export const FAKE_DEFAULTS: SpecDefaults = { sizeBytes: 64 * MiB, fs: 'ext4' };

export interface FakeServiceOptions {
  /** An existing data root: a second service on it is the plugin restarted. Absent: a fresh temp dir. */
  dir?: string;
  /** The kernel the backends see; pass the first service's to keep what it attached and mounted. */
  kernel?: FakeKernel;
  log?: Logger;
  defaults?: SpecDefaults;
  overcommit?: number;
  /** What `-o from=` copies from (the snapshot and backup rooms in the daemon). */
  clones?: VolumeServiceDeps['clones'];
}

export interface FakeService {
  service: VolumeService;
  /** The loop backend; `backends.disk` serves `-o backend=disk`. */
  backend: FakeBackend;
  backends: { loop: FakeBackend; disk: FakeBackend };
  kernel: FakeKernel;
  store: Store;
  /** The temp dir: the data root is `store.layout.root` inside it. */
  dir: string;
  /** Waits for the service's background work, then deletes the temp dir (only if this call made it). */
  close(): Promise<void>;
}

/**
 * The one place the service's unit tests build a VolumeService: real Store on a temp dir, fake
 * backends, no root, no loop devices, no mounts. The service still reads the host itself in a few
 * places (harmless without root): statfs of the data root (the space guard and Get: see
 * service-space.test.ts for how to fake it) and /proc/self/mountinfo in List, whose Mountpoint is
 * therefore '' for a volume only the fake kernel has mounted (Get and Path ask the backend).
 */
export async function makeService(options: FakeServiceOptions = {}): Promise<FakeService> {
  const owned = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'loopvol-fake-')));
  const kernel = options.kernel ?? new FakeKernel();
  const backends = { loop: new FakeBackend(kernel, 'loop'), disk: new FakeBackend(kernel, 'disk') };
  const store = new Store(new Layout(join(dir, 'root')));
  const service = new VolumeService({
    store,
    backends,
    defaults: options.defaults ?? FAKE_DEFAULTS,
    log: options.log ?? silentLog,
    overcommit: options.overcommit,
    clones: options.clones,
  });
  return {
    service,
    backend: backends.loop,
    backends,
    kernel,
    store,
    dir,
    async close() {
      await service.idle();
      if (owned) await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Registers an afterEach that closes every service the returned function made in the test: each
 * test starts from a fresh data root and leaves no temp dir behind, also on failure. A restart
 * (`dir` given) is closed too, before the service that owns the dir.
 */
export function fakeServices(): (options?: FakeServiceOptions) => Promise<FakeService> {
  let made: FakeService[] = [];
  afterEach(async () => {
    const closing = made.reverse();
    made = [];
    for (const s of closing) await s.close();
  });
  return async (options) => {
    const s = await makeService(options);
    made.push(s);
    return s;
  };
}

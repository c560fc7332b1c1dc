import { defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Tests that need no root, loop device or daemon: `npm run test:quick` runs them in seconds.
 * A new test of that kind outside test/unit is listed here.
 */
const UNIT = [
  'test/unit/**/*.test.ts',
  'test/cluster/self-fence.test.ts',
  'test/dvdcli/args.test.ts',
  'test/dvdcli/managed.test.ts',
  'test/mountdisk/persist.test.ts',
];

/**
 * Tests that must have the machine to themselves, run one after another once the others are done:
 * the cluster tests run on real ZooKeeper session timeouts of 2-3 s (an agent refuses to serve once
 * its last answer is T/3 old), which a loaded machine makes late; the property test asserts
 * host-wide that nothing was mounted or left in /tmp outside the test dirs, and restic (backup
 * tests) leaves temp files there while it runs. Two more failed beside a loaded machine: the spare
 * pool refills after a 10 ms lull, and a full host filesystem turned a container's dd error from EIO
 * into EROFS (ext4 aborted its journal first).
 */
const ALONE = [
  'test/cluster/access.test.ts',
  'test/cluster/failover.test.ts',
  'test/cluster/fencing.test.ts',
  'test/cluster/guard.test.ts',
  'test/e2e/docker-diskfull.test.ts',
  'test/integration/spares.test.ts',
  'test/reliability/properties.test.ts',
];

/**
 * Built from the Dockerfile by its project's global setup, which starts with the run and overlaps
 * the other files (test/helpers/dockerfile-build.ts); the file itself only installs and drives the
 * plugin, so it runs last of its group, when the build is most likely over.
 */
const DOCKERFILE = 'test/e2e/managed-plugin-dockerfile.test.ts';

/**
 * The longest files (minutes on a 2-core machine), longest first, so that they do not end the run
 * alone; from a full run's durations (s, under load): file-backup 362, backups 228, crash 109,
 * crash-release 97, soak 79, docker-operator 70, replay 69, docker 59, npm-pack 58, offline plugin
 * 52, snapshots 47, sea 38. vitest orders by the durations it cached; a fresh checkout (CI) has none.
 */
const LONGEST = [
  'test/integration/file-backup.test.ts',
  'test/integration/backups.test.ts',
  'test/reliability/crash.test.ts',
  'test/reliability/crash-release.test.ts',
  'test/reliability/soak.test.ts',
  'test/e2e/docker-operator.test.ts',
  'test/dvdcli/replay.test.ts',
  'test/e2e/docker.test.ts',
  'test/package/npm-pack.test.ts',
  'test/e2e/managed-plugin-offline.test.ts',
  'test/integration/snapshots.test.ts',
  'test/package/sea.test.ts',
  'test/integration/daemon.test.ts',
  'test/mountdisk/mount-disk.test.ts',
];

class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (f: TestSpecification) => {
      if (f.moduleId.endsWith(DOCKERFILE)) return LONGEST.length + 1;
      const i = LONGEST.findIndex((path) => f.moduleId.endsWith(path));
      return i === -1 ? LONGEST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  test: {
    // Storage and Docker tests spawn real tools and daemons: give them room on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: {
      // Two files at a time, each in a temp dir of its own (test/helpers/kernel.ts): the whole
      // suite is CPU-bound on 2 cores (about 750 s of CPU), so five at a time saved little wall time
      // (855 -> 780 s) and made timing-sensitive tests fail; two overlap one file's waiting
      // (dockerd, mkfs, sync) with another's work.
      forks: { maxForks: 2, minForks: 1 },
    },
    sequence: { sequencer: LongestFirst },
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      {
        extends: true,
        test: {
          name: 'system',
          include: ['test/**/*.test.ts'],
          exclude: [...UNIT, ...ALONE, DOCKERFILE],
        },
      },
      {
        extends: true,
        // A project of its own: its global setup runs only when this file is among those run.
        test: {
          name: 'dockerfile',
          include: [DOCKERFILE],
          globalSetup: ['test/helpers/dockerfile-build.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'alone',
          include: ALONE,
          // After the other projects (groupOrder 0) have finished, one file at a time.
          sequence: { groupOrder: 1 },
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});

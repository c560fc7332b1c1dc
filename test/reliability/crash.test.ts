import { CRASH_STEPS, LOOP_ATTACH_CRASH_STEPS } from '../../src/core/faults.js';
import { crashSuite } from '../helpers/crash.js';

/** Creating and mounting (crash-release.test.ts: unmounting, removing, resizing). */
crashSuite(
  [...CRASH_STEPS, ...LOOP_ATTACH_CRASH_STEPS].filter((s) => /^(create|mount):/.test(s)),
  true,
);

import { CRASH_STEPS } from '../../src/core/faults.js';
import { crashSuite } from '../helpers/crash.js';

/** Unmounting, removing and resizing (crash.test.ts: creating and mounting). */
crashSuite(
  CRASH_STEPS.filter((s) => !/^(create|mount):/.test(s)),
  false,
);

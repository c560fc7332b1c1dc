import { describe, expect, it } from 'vitest';
import { chooseLoopAttach } from '../../src/system/kernel-ops.js';

const never = () => Promise.reject(new Error('the probe must not run'));

describe('choosing how loop devices are attached', () => {
  it('follows the kernel: LOOP_CONFIGURE where it answers, LOOP_SET_FD where it does not', async () => {
    expect(await chooseLoopAttach(undefined, async () => true)).toEqual({
      path: 'configure',
      reason: 'the kernel has it',
    });
    expect(await chooseLoopAttach(undefined, async () => false)).toEqual({
      path: 'set-fd',
      reason: 'the kernel has no LOOP_CONFIGURE, added in 5.8',
    });
  });

  it('takes LOOP_SET_FD, which every supported kernel has, when the kernel cannot be asked', async () => {
    const denied = () => Promise.reject(new Error("EACCES: permission denied, open '/dev/loop-control'"));
    expect(await chooseLoopAttach(undefined, denied)).toEqual({
      path: 'set-fd',
      reason:
        "could not ask the kernel for LOOP_CONFIGURE: EACCES: permission denied, open '/dev/loop-control'",
    });
  });

  it('takes a forced path without asking, except LOOP_CONFIGURE on a kernel that says it has none', async () => {
    for (const path of ['set-fd', 'tools'] as const) {
      expect(await chooseLoopAttach(path, never)).toEqual({ path, reason: `LOOPVOL_LOOP_ATTACH=${path}` });
    }
    expect(await chooseLoopAttach('configure', async () => true)).toEqual({
      path: 'configure',
      reason: 'LOOPVOL_LOOP_ATTACH=configure',
    });
    await expect(chooseLoopAttach('configure', async () => false)).rejects.toThrow(
      'LOOPVOL_LOOP_ATTACH=configure: this kernel has no LOOP_CONFIGURE (before 5.8): unset it',
    );
  });
});

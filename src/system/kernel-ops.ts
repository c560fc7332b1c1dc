import type { FsType } from '../core/fs-type.js';
import { loadLibc } from './libc.js';
import { attachLoopIoctl, detachLoopIoctl, hasLoopConfigure } from './loop-ioctl.js';
import type { LoopAttachOptions } from './loop-options.js';
import { attachLoop, detachLoop } from './losetup.js';
import { bindReadOnly, mountDevice, unmount } from './mount.js';
import { bindReadOnlySyscall, mountSyscall, unmountSyscall } from './mount-syscall.js';

/** How loop devices are attached, best first; `LOOPVOL_LOOP_ATTACH` forces one. */
export const LOOP_ATTACH_PATHS = ['configure', 'set-fd', 'tools'] as const;
export type LoopAttachPath = (typeof LOOP_ATTACH_PATHS)[number];

/** What each path runs, for the start-up log line and doctor. */
export const LOOP_ATTACH_LABEL: Record<LoopAttachPath, string> = {
  configure: 'LOOP_CONFIGURE',
  'set-fd': 'LOOP_SET_FD + LOOP_SET_STATUS64',
  tools: 'losetup',
};

/** The kernel operations on the Mount and Unmount path. */
export interface KernelOps {
  /** `syscalls`: ioctl and mount(2) through the FFI; `tools`: losetup, mount and umount processes. */
  readonly via: 'syscalls' | 'tools';
  readonly loopAttach: LoopAttachPath;
  attachLoop(image: string, options: LoopAttachOptions): Promise<string>;
  /** Detaches; a device already gone or whose detach the kernel deferred is not an error. */
  detachLoop(device: string): Promise<void>;
  /** `options` in mount(8) form (nosuid, noatime, data=journal, ...). */
  mount(device: string, mountPoint: string, fsType: FsType, options: readonly string[]): Promise<void>;
  unmount(mountPoint: string): Promise<void>;
  /** Binds the tree at `source` on `target`, read-only, nosuid, nodev, noexec (a backup reads it there). */
  bindReadOnly(source: string, target: string): Promise<void>;
}

export const toolOps: KernelOps = {
  via: 'tools',
  loopAttach: 'tools',
  attachLoop,
  detachLoop,
  mount: mountDevice,
  unmount,
  bindReadOnly,
};

/** The operations chosen at start; `fallback` and `loopAttachReason` are for its log lines. */
export interface KernelOpsChoice {
  ops: KernelOps;
  /** Why the system calls are not used at all. */
  fallback?: string;
  /** Why loop devices are attached the way `ops.loopAttach` says. */
  loopAttachReason: string;
}

function parseLoopAttach(value: string | undefined): LoopAttachPath | undefined {
  if (value === undefined || value === '' || value === 'auto') return undefined;
  if ((LOOP_ATTACH_PATHS as readonly string[]).includes(value)) return value as LoopAttachPath;
  throw new Error(`LOOPVOL_LOOP_ATTACH=${value}: use auto, ${LOOP_ATTACH_PATHS.join(', ')}`);
}

/**
 * System calls when the FFI loads (a process costs more than the kernel work of a whole Mount),
 * the tools otherwise; `LOOPVOL_SYSCALLS=tools` forces the tools. Loop devices are attached with
 * LOOP_CONFIGURE where the kernel has it, with LOOP_SET_FD and its settings where it does not
 * (asked once, here), with losetup without the FFI; `LOOPVOL_LOOP_ATTACH` forces one of those,
 * and a forced path this process cannot take is refused at start rather than at every Mount.
 */
export async function selectKernelOps(
  prefer = process.env.LOOPVOL_SYSCALLS,
  attach = process.env.LOOPVOL_LOOP_ATTACH,
): Promise<KernelOpsChoice> {
  const forced = parseLoopAttach(attach);
  const cannot = (why: string) =>
    new Error(`LOOPVOL_LOOP_ATTACH=${forced} needs the system calls, but ${why}: unset it or use tools`);
  if (prefer === 'tools') {
    if (forced && forced !== 'tools') throw cannot('LOOPVOL_SYSCALLS=tools');
    return { ops: toolOps, fallback: 'LOOPVOL_SYSCALLS=tools', loopAttachReason: 'LOOPVOL_SYSCALLS=tools' };
  }
  const libc = await loadLibc();
  if (libc instanceof Error) {
    if (forced && forced !== 'tools') throw cannot(`the FFI does not load (${libc.message})`);
    const fallback = `FFI unavailable: ${libc.message}`;
    return { ops: toolOps, fallback, loopAttachReason: fallback };
  }
  const { path, reason } = await chooseLoopAttach(forced, () => hasLoopConfigure(libc));
  const ioctlAttach = path !== 'tools';
  return {
    ops: {
      via: 'syscalls',
      loopAttach: path,
      attachLoop: ioctlAttach ? (image, options) => attachLoopIoctl(libc, image, options, path) : attachLoop,
      detachLoop: ioctlAttach ? (device) => detachLoopIoctl(libc, device) : detachLoop,
      mount: (device, mountPoint, fsType, options) => mountSyscall(libc, device, mountPoint, fsType, options),
      unmount: (mountPoint) => unmountSyscall(libc, mountPoint),
      bindReadOnly: (source, target) => bindReadOnlySyscall(libc, source, target),
    },
    loopAttachReason: reason,
  };
}

/**
 * The attach path from what the kernel answers. A probe that cannot run (no /dev/loop-control
 * yet) picks LOOP_SET_FD, which every supported kernel has.
 */
export async function chooseLoopAttach(
  forced: LoopAttachPath | undefined,
  probe: () => Promise<boolean>,
): Promise<{ path: LoopAttachPath; reason: string }> {
  const byForce = (path: LoopAttachPath) => ({ path, reason: `LOOPVOL_LOOP_ATTACH=${path}` });
  if (forced === 'tools' || forced === 'set-fd') return byForce(forced);
  const configurable = await probe().catch((err: Error) => err);
  if (configurable instanceof Error) {
    if (forced) return byForce(forced);
    return {
      path: 'set-fd',
      reason: `could not ask the kernel for LOOP_CONFIGURE: ${configurable.message}`,
    };
  }
  if (forced) {
    if (!configurable)
      throw new Error(
        'LOOPVOL_LOOP_ATTACH=configure: this kernel has no LOOP_CONFIGURE (before 5.8): unset it',
      );
    return byForce(forced);
  }
  return configurable
    ? { path: 'configure', reason: 'the kernel has it' }
    : { path: 'set-fd', reason: 'the kernel has no LOOP_CONFIGURE, added in 5.8' };
}

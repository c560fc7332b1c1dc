import { relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { holderCount } from '../core/holders.js';
import { isWithin } from '../core/paths.js';
import type { Store } from '../state/store.js';
import type { KernelOps } from '../system/kernel-ops.js';
import { type LoopDevice, listLoops, readLoop } from '../system/loop-sysfs.js';
import { type MountEntry, readMounts } from '../system/mountinfo.js';
import type { VolumePort } from '../volume/port.js';

/** One thing gc looked at, what it did (or, with --dry-run, would do) and why. */
export interface GcFinding {
  kind: 'loop device' | 'volume' | 'staging' | 'trash' | 'mountpoint' | 'volume directory';
  /** A path, a device or a volume name. */
  target: string;
  action: 'cleaned' | 'would clean' | 'kept' | 'failed';
  reason: string;
}

/**
 * Finds what interrupted work left behind and cleans it: loop devices of loopvol images that no
 * mount and no holder uses, staging and trash directories, mountpoints of volumes that are gone.
 * Touches nothing outside loopvol's own directories (a loop device counts only when its image is
 * under the data root), and reports what it keeps, with why.
 */
export class Collector {
  constructor(
    private readonly store: Store,
    private readonly service: VolumePort,
    private readonly kernel: KernelOps,
  ) {}

  async collect(dryRun: boolean, log: Logger): Promise<GcFinding[]> {
    // Which volumes are served is known only once start-up has read them.
    await this.service.start();
    const findings: GcFinding[] = [];
    // Loop devices first: detaching a leftover's device frees its mountpoint for the sweep.
    const mounts = await readMounts();
    const released: string[] = [];
    for (const loop of await listLoops()) {
      if (!isWithin(loop.backingFile, this.store.layout.root)) continue;
      const finding = await this.loopFinding(loop, mounts, dryRun);
      if (finding) findings.push(finding);
      if (finding?.action === 'would clean') released.push(loop.backingFile);
    }
    for (const { leftover, error } of await this.store.sweep(dryRun, released)) {
      findings.push({
        kind: leftover.kind,
        target: leftover.path,
        action: error ? 'failed' : leftover.keep ? 'kept' : dryRun ? 'would clean' : 'cleaned',
        reason:
          error ??
          leftover.keep ??
          (leftover.kind === 'mountpoint'
            ? 'its volume no longer exists'
            : `left by an interrupted ${leftover.kind === 'staging' ? 'Create' : 'Remove'}`),
      });
    }
    for (const [name, why] of this.service.unreadable) {
      findings.push({
        kind: 'volume directory',
        target: this.store.layout.volume(name).dir,
        action: 'kept',
        reason: `its metadata could not be read (${why}), so it is not served: repair volume.json or move the directory away, then restart loopvol`,
      });
    }
    for (const f of findings) {
      const line = { kind: f.kind, target: f.target, reason: f.reason, dryRun };
      if (f.action === 'failed') log.error(line, 'gc could not clean this');
      else if (f.action === 'kept') log.info(line, 'gc kept this');
      else log.info(line, dryRun ? 'gc would clean this' : 'gc cleaned this');
    }
    return findings;
  }

  private async loopFinding(
    loop: LoopDevice,
    mounts: MountEntry[],
    dryRun: boolean,
  ): Promise<GcFinding | undefined> {
    const name = this.servedVolumeOf(loop.backingFile);
    if (name !== undefined) {
      // Fine while held; otherwise an interrupted Mount or Unmount (or someone's losetup) left it.
      const released = await this.service.maintain(name, async ({ record, paths, backend }) => {
        if (holderCount(record.holders) > 0 || loop.autoclear) return false;
        if (dryRun) return true;
        await backend.deactivate(paths, record);
        // A device attached behind loopvol's back is not in its index: detach it by name.
        if (readLoop(loop.device)?.backingFile === loop.backingFile)
          await this.kernel.detachLoop(loop.device);
        return true;
      });
      if (!released) return undefined;
      return {
        kind: 'volume',
        target: name,
        action: dryRun ? 'would clean' : 'cleaned',
        reason: `attached (${loop.device}) with no holder: left by an interrupted Mount or Unmount`,
      };
    }
    const base = { kind: 'loop device' as const, target: loop.device };
    if (this.store.working(loop.backingFile)) {
      const reason = `serves ${loop.backingFile}, which a Create (a restore) or a backup in progress has mounted`;
      return { ...base, action: 'kept', reason };
    }
    const serves = `serves ${loop.backingFile}, which is no volume's image (left by an interrupted Create or Remove)`;
    if (loop.autoclear) {
      return {
        ...base,
        action: 'kept',
        reason: `${serves}, but its detach is pending: something still has it open, and the kernel frees it at the last close`,
      };
    }
    const mountedAt = mounts.filter((m) => m.source === loop.device).map((m) => m.mountPoint);
    const ours = (p: string) =>
      isWithin(p, this.store.layout.root) || isWithin(p, this.store.layout.mountRoot);
    const foreign = mountedAt.filter((p) => !ours(p));
    if (foreign.length > 0) {
      return {
        ...base,
        action: 'kept',
        reason: `${serves}, but it is mounted at ${foreign.join(', ')}, outside loopvol's directories: unmount it there first`,
      };
    }
    if (dryRun) return { ...base, action: 'would clean', reason: serves };
    try {
      for (const mountPoint of mountedAt.reverse()) await this.kernel.unmount(mountPoint);
      await this.kernel.detachLoop(loop.device);
      return {
        ...base,
        action: 'cleaned',
        reason: `${serves}; ${mountedAt.length > 0 ? 'unmounted and ' : ''}detached`,
      };
    } catch (err) {
      return { ...base, action: 'failed', reason: `${serves}; ${(err as Error).message}` };
    }
  }

  /** The served volume whose image `file` is, if any. */
  private servedVolumeOf(file: string): string | undefined {
    const parts = relative(this.store.layout.volumes, file).split(sep);
    const [name, image] = parts;
    if (parts.length !== 2 || name === undefined || image === undefined) return undefined;
    return this.service.has(name) && this.store.layout.volume(name).image === file ? name : undefined;
  }
}

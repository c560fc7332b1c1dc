import pMap from 'p-map';
import type { Logger } from 'pino';
import type { Backend } from '../backend/backend.js';
import { describeError } from '../core/errors.js';
import { holderCount } from '../core/holders.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumeRecord } from '../state/record.js';
import type { Store } from '../state/store.js';
import type { FileSpace } from '../system/fsstat.js';
import { readMounts } from '../system/mountinfo.js';
import type { Registry } from './registry.js';
import type { Space } from './space.js';

/** Volumes reconciled at once at start-up. */
const RECONCILE_CONCURRENCY = 32;

/**
 * Start-up: finishes interrupted Creates/Removes, loads the records, then makes each agree with
 * the kernel. Holders of a volume that is no longer mounted (host reboot, manual umount) are
 * dropped; a volume mounted with no holders (killed mid-Mount or mid-Unmount) is unmounted; one in
 * use stays mounted.
 */
export class Reconciler {
  constructor(
    private readonly store: Store,
    private readonly backends: Record<VolumeSpec['backend'], Backend>,
    private readonly registry: Registry,
    private readonly space: Space,
    private readonly log: Logger,
  ) {}

  async run(): Promise<void> {
    try {
      for (const { leftover, error } of await this.store.sweep()) {
        if (error)
          this.log.error(
            { path: leftover.path, err: error },
            'could not delete a leftover of an interrupted create or remove; it is kept',
          );
        else if (!leftover.keep)
          this.log.info({ path: leftover.path }, 'deleted leftover of an interrupted create or remove');
      }
    } catch (err) {
      this.log.error({ err }, 'could not delete leftovers of interrupted operations; they are kept');
    }
    await Promise.all(Object.values(this.backends).map((b) => b.startup()));
    const { records, images, unreadable, swept } = await this.store.loadAll();
    for (const path of swept) this.log.info({ path }, 'deleted leftover of an interrupted metadata write');
    for (const bad of unreadable) {
      this.registry.unreadable.set(bad.name, bad.reason);
      if (bad.claim) this.registry.heldUnreadable.push({ volume: bad.name, ...bad.claim });
      this.log.error(
        { volume: bad.name, reason: bad.reason, path: this.store.layout.volume(bad.name).dir },
        'volume metadata unreadable: volume not served; repair or move the directory away and restart',
      );
    }
    for (const record of records) this.registry.set(record);
    // One read of mountinfo for all; then each volume costs a stat and, if attached, a sysfs read.
    const mounts = new Set((await readMounts()).map((m) => m.mountPoint));
    await pMap(
      records,
      async (record) => {
        try {
          await this.reconcileOne(await this.upgrade(record), mounts, images.get(record.name));
        } catch (err) {
          this.log.error(
            { volume: record.name, err },
            'could not reconcile volume with the kernel; it is served as recorded',
          );
        }
      },
      { concurrency: RECONCILE_CONCURRENCY },
    );
    this.log.info({ volumes: records.length }, 'state reconciled with the kernel');
  }

  /** A record an older loopvol wrote, brought up to date by its backend (see Backend.upgrade). */
  private async upgrade(record: VolumeRecord): Promise<VolumeRecord> {
    const volume = record.name;
    let upgraded: Partial<VolumeRecord> | undefined;
    try {
      upgraded = await this.backends[record.spec.backend].upgrade?.(this.store.layout.volume(volume), record);
    } catch (err) {
      this.log.warn(
        { volume, disk: record.disk, reason: describeError(err) },
        'disk volume record not upgraded',
      );
      return record;
    }
    if (!upgraded) return record;
    const next = { ...record, ...upgraded };
    await this.store.save(next);
    this.registry.set(next);
    this.log.info(
      { volume, from: record.disk, disk: next.disk, fsUuid: next.fsUuid },
      'disk volume record upgraded: its disk is now named by stable id and checked by filesystem UUID',
    );
    return next;
  }

  private async reconcileOne(
    record: VolumeRecord,
    mounts: ReadonlySet<string>,
    image: FileSpace | undefined,
  ): Promise<void> {
    // No child logger: most volumes log nothing here, and a child costs more than the rest.
    const volume = record.name;
    const paths = this.store.layout.volume(record.name);
    const backend = this.backends[record.spec.backend];
    const { imageSize } = this.space.measure(record, image);
    if (imageSize !== undefined && imageSize > record.spec.sizeBytes) {
      this.log.warn(
        { volume, recorded: record.spec.sizeBytes, image: imageSize },
        `a resize was interrupted: run "loopvol resize ${record.name} ${imageSize}B" again to complete it`,
      );
    }
    const state = await backend.inspect(paths, record, mounts);
    const count = holderCount(record.holders);
    if (state.mounted && count > 0) {
      this.log.info({ volume, holders: count, device: state.device }, 'volume in use stays mounted');
      return;
    }
    if (count > 0) {
      this.log.warn(
        { volume, dropped: record.holders },
        'volume is no longer mounted (reboot or manual umount): dropping its holders',
      );
      await this.registry.saveHolders({ ...record, holders: {} });
    }
    if (state.mounted || state.device) {
      this.log.warn(
        { volume, device: state.device },
        'volume attached without holders (interrupted mount or unmount): releasing it',
      );
      await backend.deactivate(paths, record);
    }
  }
}

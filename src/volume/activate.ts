import type { Logger } from 'pino';
import type { Backend, KernelState } from '../backend/backend.js';
import { FilesystemDamaged, VolumeError, wrap } from '../core/errors.js';
import { holderCount } from '../core/holders.js';
import type { VolumeKeys } from '../encryption/keys.js';
import { lock, unlock } from '../encryption/unlock.js';
import type { VolumePaths } from '../state/layout.js';
import type { VolumeRecord } from '../state/record.js';

/**
 * A Mount's attach-and-mount (see Backend.activate), then an encrypted volume's key added (see
 * unlock): a damaged filesystem or a wrong key is refused with what to do about it, and leaves
 * nothing mounted that was not before.
 */
export async function activateForMount(
  backend: Backend,
  paths: VolumePaths,
  record: VolumeRecord,
  log: Logger,
  keys: VolumeKeys,
): Promise<KernelState> {
  const state = await activateOnly(backend, paths, record, log);
  if (!record.encryption) return state;
  try {
    await unlock(record.name, paths.mountPoint, record.encryption, keys);
  } catch (err) {
    await undoActivation(backend, record, paths);
    throw wrap(err, `cannot mount volume ${record.name}`);
  }
  return state;
}

async function activateOnly(
  backend: Backend,
  paths: VolumePaths,
  record: VolumeRecord,
  log: Logger,
): Promise<KernelState> {
  const { name } = record;
  try {
    return await backend.activate(paths, record, !record.initialized);
  } catch (err) {
    if (err instanceof FilesystemDamaged) {
      log.error({ problem: err.detail, output: err.output }, 'filesystem damaged: refusing to mount it');
      throw new VolumeError(
        `cannot mount volume ${name}: its filesystem is damaged (${err.detail}): run "loopvol fsck ${name} --repair" while no container uses it, then mount again`,
      );
    }
    throw wrap(err, `cannot mount volume ${name}`);
  }
}

/** Says what the check before mounting found, if it ran. */
export function reportPreened(state: KernelState, log: Logger): void {
  if (!state.preened) return;
  const { reason, report } = state.preened;
  log.warn(
    { reason, command: report.command, exitCode: report.exitCode, output: report.output },
    report.repaired
      ? 'filesystem was not left cleanly: the check before mounting repaired it'
      : 'filesystem was not left cleanly: the check before mounting found it consistent',
  );
}

/** Says that attaching a preallocated image allocated again what a host fstrim had punched. */
export function reportRefilled(state: KernelState, log: Logger): void {
  if (!state.refilledBytes) return;
  log.warn(
    { refilledBytes: state.refilledBytes },
    'preallocated image had lost part of its allocation (a host fstrim punches the free space of mounted volumes): allocated again',
  );
}

/** Undoes a Mount's activation that will not be recorded, unless earlier holders still use it. */
export async function undoActivation(
  backend: Backend,
  record: VolumeRecord,
  paths: VolumePaths,
): Promise<void> {
  if (holderCount(record.holders) > 0) return;
  await deactivateVolume(backend, paths, record).catch(() => undefined);
}

/**
 * Unmounts and detaches a volume that no one holds; an encrypted one's key is removed from its
 * filesystem first (see lock).
 */
export async function deactivateVolume(
  backend: Backend,
  paths: VolumePaths,
  record: VolumeRecord,
  log?: Logger,
): Promise<void> {
  if (record.encryption && (await backend.inspect(paths, record)).mounted) {
    const { filesBusy } = await lock(paths.mountPoint, record.encryption);
    if (filesBusy) {
      log?.warn(
        'files of the encrypted volume are still open (a container copy of the mount?): the kernel keeps their plain text until they are closed',
      );
    }
  }
  await backend.deactivate(paths, record);
}

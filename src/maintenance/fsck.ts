import type { Logger } from 'pino';
import { VolumeError } from '../core/errors.js';
import { describeHolders, holderCount } from '../core/holders.js';
import { type CheckReport, checkFilesystem } from '../system/fsck.js';
import type { VolumePort } from '../volume/port.js';

/**
 * `loopvol fsck NAME [--repair]`: a full check of a volume's filesystem, which must be unused.
 * Read-only unless `repair`. An xfs whose log needs replaying is mounted once first (a mount
 * replays it) when repairing; a read-only check reports it instead.
 */
export async function fsckVolume(
  service: VolumePort,
  name: string,
  repair: boolean,
  log: Logger,
): Promise<CheckReport> {
  return service.maintain(name, async ({ record, paths, backend }) => {
    if (holderCount(record.holders) > 0) {
      throw new VolumeError(
        `volume ${name} is in use by ${describeHolders(record.holders)}: a check needs it unmounted; stop them first`,
        'conflict',
      );
    }
    // Nothing holds it, so a mount or device left here is a leftover of an interrupted Unmount.
    const state = await backend.inspect(paths, record);
    if (state.mounted || state.device) await backend.deactivate(paths, record);
    if ((await backend.inspect(paths, record)).device) {
      throw new VolumeError(
        `volume ${name} is still attached while the kernel finishes detaching it (something else has it open): try again in a moment`,
        'conflict',
      );
    }
    const target = await backend.checkTarget(paths, record);
    let report = await checkFilesystem(target, record.spec.fs, repair);
    if (report.dirtyLog && repair) {
      log.info('xfs log needs replaying: mounting the volume once to replay it');
      await backend.activate(paths, record, false);
      await backend.deactivate(paths, record);
      report = await checkFilesystem(target, record.spec.fs, repair);
    }
    const summary = { command: report.command, exitCode: report.exitCode, output: report.output };
    if (report.clean) log.info(summary, report.repaired ? 'filesystem repaired' : 'filesystem is clean');
    else log.warn(summary, 'filesystem has problems left');
    return report;
  });
}

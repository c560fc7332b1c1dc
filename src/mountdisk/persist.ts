import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../state/atomic.js';
import { run } from '../system/exec.js';
import { mountUnitName } from './systemd-escape.js';

/** How a mount disk comes back after a reboot: the Mesos agent exits if a MOUNT root is missing. */
export type PersistMode = 'systemd' | 'fstab' | 'none';

export interface PersistOptions {
  mode: PersistMode;
  fstab: string;
  unitDir: string;
  /** The unit the mount must precede (the Mesos agent). */
  before: string;
}

export const SYSTEM_UNIT_DIR = '/etc/systemd/system';

/** systemd when it is PID 1 here, else fstab. */
export function defaultPersistMode(): PersistMode {
  return existsSync('/run/systemd/system') ? 'systemd' : 'fstab';
}

/** Mount options at boot: the same as when loopvol mounts the disk itself. */
export const MOUNT_OPTIONS = 'loop,nosuid,nodev';

/** DC/OS's documented line for a loop-backed mount disk, with loopvol's mount options. */
export function fstabLine(image: string, mountPoint: string): string {
  return `${image} ${mountPoint} ext4 ${MOUNT_OPTIONS} 0 2`;
}

const fields = (line: string) => line.trim().split(/\s+/);

async function readLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** Adds the disk's fstab line unless an entry for the mountpoint exists; other lines stay byte-exact. */
export async function addFstabEntry(fstab: string, image: string, mountPoint: string): Promise<boolean> {
  const lines = await readLines(fstab);
  if (lines.some((l) => !l.trim().startsWith('#') && fields(l)[1] === mountPoint)) return false;
  await writeFileAtomic(fstab, `${[...lines, fstabLine(image, mountPoint)].join('\n')}\n`, { mode: 0o644 });
  return true;
}

export async function removeFstabEntry(fstab: string, mountPoint: string): Promise<boolean> {
  const lines = await readLines(fstab);
  const kept = lines.filter((l) => l.trim().startsWith('#') || fields(l)[1] !== mountPoint);
  if (kept.length === lines.length) return false;
  await writeFileAtomic(fstab, kept.length > 0 ? `${kept.join('\n')}\n` : '', { mode: 0o644 });
  return true;
}

export async function hasFstabEntry(fstab: string, mountPoint: string): Promise<boolean> {
  return (await readLines(fstab)).some((l) => !l.trim().startsWith('#') && fields(l)[1] === mountPoint);
}

export function mountUnit(image: string, mountPoint: string, before: string): string {
  return `# Written by loopvol mount-disk: the DC/OS mount disk ${mountPoint}. Remove with loopvol mount-disk rm.
[Unit]
Description=loopvol mount disk ${mountPoint}
Before=${before}

[Mount]
What=${image}
Where=${mountPoint}
Type=ext4
Options=${MOUNT_OPTIONS}

[Install]
WantedBy=local-fs.target
RequiredBy=${before}
`;
}

/** systemctl is only run for the real unit directory on a host where systemd runs. */
const managesSystemd = (unitDir: string) => unitDir === SYSTEM_UNIT_DIR && existsSync('/run/systemd/system');

export async function writeMountUnit(o: PersistOptions, image: string, mountPoint: string): Promise<string> {
  const unit = join(o.unitDir, mountUnitName(mountPoint));
  await writeFileAtomic(unit, mountUnit(image, mountPoint, o.before), { mode: 0o644 });
  if (managesSystemd(o.unitDir)) {
    await run('systemctl', ['daemon-reload']);
    await run('systemctl', ['enable', mountUnitName(mountPoint)]);
  }
  return unit;
}

export async function removeMountUnit(o: PersistOptions, mountPoint: string): Promise<boolean> {
  const unit = join(o.unitDir, mountUnitName(mountPoint));
  if (!existsSync(unit)) return false;
  if (managesSystemd(o.unitDir)) await run('systemctl', ['disable', mountUnitName(mountPoint)]);
  await rm(unit);
  if (managesSystemd(o.unitDir)) await run('systemctl', ['daemon-reload']);
  return true;
}

/** How a mountpoint is persisted now, looking in both places whatever the chosen mode. */
export async function persistedHow(o: PersistOptions, mountPoint: string): Promise<PersistMode> {
  if (existsSync(join(o.unitDir, mountUnitName(mountPoint)))) return 'systemd';
  if (await hasFstabEntry(o.fstab, mountPoint)) return 'fstab';
  return 'none';
}

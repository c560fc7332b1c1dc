import { parseArgs } from 'node:util';
import { z } from 'zod';
import { formatSize, parseSize } from '../core/size.js';
import {
  createDisk,
  listDisks,
  type MountDisk,
  type MountDiskOptions,
  removeDisk,
} from '../mountdisk/disks.js';
import { defaultPersistMode, SYSTEM_UNIT_DIR } from '../mountdisk/persist.js';

export const MOUNT_DISK_USAGE = `usage: loopvol mount-disk create --size SIZE [common flags] [--persist systemd|fstab|none]
                              [--fstab PATH] [--unit-dir DIR] [--before UNIT]
       loopvol mount-disk ls [common flags] [--json]
       loopvol mount-disk rm N [common flags] [--force]

  common flags: --root DIR (default /dcos), --image-dir DIR (default /var/lib/loopvol/mount-disks)
  create makes the next free ROOT/volume<N> (preallocated image, ext4), mounts it and persists it
  (a systemd mount unit ordered before --before, default dcos-mesos-slave.service, where systemd runs;
  else an fstab line). Re-running after an interrupted create completes that disk.`;

/** Smallest disk worth offering: DC/OS reserves 100 MiB of each and advises at least 200 MB. */
const MIN_DISK_BYTES = 200 * 1024 * 1024;

const absolute = (flag: string) =>
  z.string().regex(/^\/[^\s]*$/, `${flag} must be an absolute path without spaces`);

const flagsSchema = z.object({
  root: absolute('--root'),
  imageDir: absolute('--image-dir'),
  persist: z.enum(['systemd', 'fstab', 'none'], { error: '--persist must be systemd, fstab or none' }),
  fstab: absolute('--fstab'),
  unitDir: absolute('--unit-dir'),
  before: z.string().regex(/^[A-Za-z0-9@_.:-]+$/, '--before must be a systemd unit name'),
});

function options(values: Record<string, string | boolean | undefined>): MountDiskOptions {
  const f = flagsSchema.parse({
    root: (values.root as string | undefined) ?? '/dcos',
    imageDir: (values['image-dir'] as string | undefined) ?? '/var/lib/loopvol/mount-disks',
    persist: (values.persist as string | undefined) ?? defaultPersistMode(),
    fstab: (values.fstab as string | undefined) ?? '/etc/fstab',
    unitDir: (values['unit-dir'] as string | undefined) ?? SYSTEM_UNIT_DIR,
    before: (values.before as string | undefined) ?? 'dcos-mesos-slave.service',
  });
  return {
    root: f.root.replace(/\/+$/, '') || '/',
    imageDir: f.imageDir,
    persist: { mode: f.persist, fstab: f.fstab, unitDir: f.unitDir, before: f.before },
  };
}

const line = (d: MountDisk) =>
  [
    d.mountPoint,
    d.mounted ? 'mounted' : 'NOT MOUNTED',
    d.sizeBytes === null ? '-' : formatSize(d.sizeBytes),
    d.freeBytes === null ? '-' : `${formatSize(d.freeBytes)} free`,
    d.resourceMiB === null ? '-' : `${d.resourceMiB} MiB offered`,
    `persisted: ${d.persisted}`,
    d.loopDevice ?? '-',
    d.image,
  ].join('\t');

export async function mountDiskCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      size: { type: 'string' },
      root: { type: 'string' },
      'image-dir': { type: 'string' },
      persist: { type: 'string' },
      fstab: { type: 'string' },
      'unit-dir': { type: 'string' },
      before: { type: 'string' },
      json: { type: 'boolean' },
      force: { type: 'boolean' },
    },
  });
  const [sub, arg] = positionals;
  let o: MountDiskOptions;
  try {
    o = options(values);
  } catch (err) {
    throw new Error(
      err instanceof z.ZodError ? (err.issues[0]?.message ?? 'invalid flags') : (err as Error).message,
    );
  }
  switch (sub) {
    case 'create': {
      const size = parseSize(values.size ?? '');
      if (values.size === undefined) throw new Error(`--size is required\n\n${MOUNT_DISK_USAGE}`);
      if ('error' in size) throw new Error(size.error);
      if (size.bytes < MIN_DISK_BYTES) {
        throw new Error(
          `--size ${formatSize(size.bytes)} is below ${formatSize(MIN_DISK_BYTES)}: DC/OS reserves 100 MiB of every mount disk`,
        );
      }
      const { disk, action } = await createDisk(o, size.bytes);
      const verb = action === 'created' ? 'created' : 'completed (left unfinished by an interrupted run)';
      process.stdout.write(
        `${verb} ${disk.mountPoint}: ${formatSize(disk.sizeBytes ?? 0)} ext4 on ${disk.loopDevice}, image ${disk.image}, persisted by ${disk.persisted}; offers ${disk.resourceMiB} MiB\n`,
      );
      return;
    }
    case 'ls': {
      const disks = await listDisks(o);
      process.stdout.write(
        values.json ? `${JSON.stringify(disks, null, 2)}\n` : disks.map((d) => `${line(d)}\n`).join(''),
      );
      return;
    }
    case 'rm': {
      if (!arg || !/^\d+$/.test(arg))
        throw new Error(`rm takes the disk's number N (ROOT/volumeN)\n\n${MOUNT_DISK_USAGE}`);
      const disk = await removeDisk(o, Number(arg), values.force === true);
      process.stdout.write(`removed ${disk.mountPoint} and its image ${disk.image}\n`);
      return;
    }
    default:
      throw new Error(`unknown mount-disk command "${sub ?? ''}"\n\n${MOUNT_DISK_USAGE}`);
  }
}

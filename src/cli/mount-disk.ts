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
import { formatHelp, parseCommandLine, UsageError } from './args.js';

export const MOUNT_DISK_HELP = formatHelp({
  usage: [
    'mount-disk create --size SIZE [--root DIR] [--image-dir DIR] [--persist systemd|fstab|none] [--fstab PATH] [--unit-dir DIR] [--before UNIT]',
    'mount-disk ls [--root DIR] [--image-dir DIR] [--json]',
    'mount-disk rm N [--root DIR] [--image-dir DIR] [--force]',
  ],
  about:
    'create makes the next free ROOT/volume<N> (a preallocated image, ext4), mounts it and persists it (a systemd mount unit ordered before --before where systemd runs, else an fstab line); re-running after an interrupted create completes that disk. ls lists the mount disks; rm N unmounts and removes ROOT/volumeN and its image.',
  options: [
    [
      '--size SIZE',
      'create: the disk size, 512M, 10G or 1.5T (binary units), a bare number is GiB; at least 200M',
    ],
    ['--root DIR', 'where the disks are mounted; default /dcos'],
    ['--image-dir DIR', 'where their images live; default /var/lib/loopvol/mount-disks'],
    ['--persist MODE', 'create: systemd, fstab or none; default systemd where systemd runs, else fstab'],
    ['--fstab PATH', 'the fstab to write; default /etc/fstab'],
    ['--unit-dir DIR', `where mount units go; default ${SYSTEM_UNIT_DIR}`],
    ['--before UNIT', 'the unit the mount is ordered before; default dcos-mesos-slave.service'],
    ['--json', 'ls: print the disks as JSON'],
    ['--force', 'rm: remove a disk that holds data'],
  ],
  notes: [
    'Exit codes: 0 done; 1 the work failed or was refused (its message on stderr); 2 the command line is wrong.',
  ],
  example: 'loopvol mount-disk create --size 100G',
});

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

export const MOUNT_DISK_OPTIONS = {
  size: { type: 'string' },
  root: { type: 'string' },
  'image-dir': { type: 'string' },
  persist: { type: 'string' },
  fstab: { type: 'string' },
  'unit-dir': { type: 'string' },
  before: { type: 'string' },
  json: { type: 'boolean' },
  force: { type: 'boolean' },
} as const;

export async function mountDiskCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, MOUNT_DISK_OPTIONS);
  const [sub, arg, extra] = positionals;
  if (extra !== undefined || (arg !== undefined && sub !== 'rm'))
    throw new UsageError(`unexpected argument "${extra ?? arg}"`);
  let o: MountDiskOptions;
  try {
    o = options(values);
  } catch (err) {
    if (err instanceof z.ZodError) throw new UsageError(err.issues[0]?.message ?? 'invalid flags');
    throw err;
  }
  switch (sub) {
    case 'create': {
      if (values.size === undefined) throw new UsageError('--size is required for create');
      const size = parseSize(values.size);
      if ('error' in size) throw new UsageError(`--size: ${size.error}`);
      if (size.bytes < MIN_DISK_BYTES) {
        throw new UsageError(
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
      if (!arg || !/^\d+$/.test(arg)) throw new UsageError("rm takes the disk's number N (ROOT/volumeN)");
      const disk = await removeDisk(o, Number(arg), values.force === true);
      process.stdout.write(`removed ${disk.mountPoint} and its image ${disk.image}\n`);
      return;
    }
    default:
      throw new UsageError(
        sub ? `unknown mount-disk action "${sub}"` : 'missing the action: create, ls or rm',
      );
  }
}

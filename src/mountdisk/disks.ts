import { mkdir, open, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../state/atomic.js';
import { preallocate } from '../system/allocate.js';
import { filesystemUsage } from '../system/fsstat.js';
import { loopsFor, passFlushes } from '../system/loop-sysfs.js';
import { attachLoop, detachLoop } from '../system/losetup.js';
import { makeFilesystem } from '../system/mkfs.js';
import { mountDevice, UNTRUSTED_CONTENT_OPTIONS, unmount } from '../system/mount.js';
import { mountAt } from '../system/mountinfo.js';
import {
  addFstabEntry,
  type PersistMode,
  type PersistOptions,
  persistedHow,
  removeFstabEntry,
  removeMountUnit,
  writeMountUnit,
} from './persist.js';
import { offerableMiB } from './resources.js';

/** Where mount disks live: mountpoints ROOT/volume<N>, images IMAGE_DIR/volume<N>.img. */
export interface MountDiskOptions {
  root: string;
  imageDir: string;
  persist: PersistOptions;
}

/** One mount disk as `ls` shows it. */
export interface MountDisk {
  index: number;
  mountPoint: string;
  image: string;
  imageExists: boolean;
  mounted: boolean;
  loopDevice: string | null;
  sizeBytes: number | null;
  freeBytes: number | null;
  persisted: PersistMode;
  /** The MOUNT disk resource it yields in MiB (free - 100), null when unmounted. */
  resourceMiB: number | null;
}

const IMAGE = /^volume(\d+)\.img$/;
const PARTIAL = /^volume\d+\.img\.partial$/;

const paths = (o: MountDiskOptions, index: number) => ({
  mountPoint: join(o.root, `volume${index}`),
  image: join(o.imageDir, `volume${index}.img`),
});

async function describe(o: MountDiskOptions, index: number): Promise<MountDisk> {
  const { mountPoint, image } = paths(o, index);
  const [mount, loops, info, persisted] = await Promise.all([
    mountAt(mountPoint),
    loopsFor(image),
    stat(image).catch(() => undefined),
    persistedHow(o.persist, mountPoint),
  ]);
  const mounted = mount !== undefined;
  return {
    index,
    mountPoint,
    image,
    imageExists: info !== undefined,
    mounted,
    loopDevice: loops[0] ?? null,
    sizeBytes: info?.size ?? null,
    freeBytes: mounted ? filesystemUsage(mountPoint).freeBytes : null,
    persisted,
    resourceMiB: mounted ? await offerableMiB(mountPoint) : null,
  };
}

/** Every disk loopvol made (an image) or that is mounted at ROOT/volume<N>. */
export async function listDisks(o: MountDiskOptions): Promise<MountDisk[]> {
  const indices = new Set<number>();
  for (const name of await readdir(o.imageDir).catch(() => [])) {
    const m = IMAGE.exec(name);
    if (m) indices.add(Number(m[1]));
  }
  for (const name of await readdir(o.root).catch(() => [])) {
    const m = /^volume(\d+)$/.exec(name);
    if (m && (await mountAt(join(o.root, name)))) indices.add(Number(m[1]));
  }
  return Promise.all([...indices].sort((a, b) => a - b).map((i) => describe(o, i)));
}

/** Mounts (loop) and persists a disk whose image exists; each step is skipped when already done. */
async function complete(o: MountDiskOptions, disk: MountDisk): Promise<void> {
  await mkdir(disk.mountPoint, { recursive: true, mode: 0o755 });
  if (!disk.mounted) {
    const device = disk.loopDevice ?? (await attachLoop(disk.image, { directIo: true }));
    try {
      passFlushes(device);
      await mountDevice(device, disk.mountPoint, 'ext4', UNTRUSTED_CONTENT_OPTIONS);
    } catch (err) {
      if (!disk.loopDevice) await detachLoop(device).catch(() => undefined);
      throw err;
    }
  }
  if (disk.persisted === 'none') await persist(o, disk);
}

async function persist(o: MountDiskOptions, disk: MountDisk): Promise<void> {
  if (o.persist.mode === 'fstab') await addFstabEntry(o.persist.fstab, disk.image, disk.mountPoint);
  if (o.persist.mode === 'systemd') await writeMountUnit(o.persist, disk.image, disk.mountPoint);
}

/** True when a disk needs finishing: an image that is not mounted, or not persisted as asked. */
const incomplete = (o: MountDiskOptions, d: MountDisk) =>
  d.imageExists && (!d.mounted || (o.persist.mode !== 'none' && d.persisted === 'none'));

/**
 * Makes the next free ROOT/volume<N>: a preallocated image (the disk is offered as guaranteed
 * space), ext4, mounted and persisted. Idempotent across crashes: a half-written image
 * (`.partial`) is deleted, and a disk left unmounted or unpersisted by an interrupted run is
 * completed instead of a second disk being made.
 */
export async function createDisk(
  o: MountDiskOptions,
  sizeBytes: number,
): Promise<{ disk: MountDisk; action: 'created' | 'completed' }> {
  await mkdir(o.imageDir, { recursive: true, mode: 0o700 });
  await mkdir(o.root, { recursive: true, mode: 0o755 });
  for (const name of await readdir(o.imageDir)) {
    if (PARTIAL.test(name)) await rm(join(o.imageDir, name), { force: true });
  }
  const existing = await listDisks(o);
  const unfinished = existing.find((d) => incomplete(o, d));
  if (unfinished) {
    await complete(o, unfinished);
    return { disk: await describe(o, unfinished.index), action: 'completed' };
  }
  for (let index = 0; ; index++) {
    const { mountPoint, image } = paths(o, index);
    if (existing.some((d) => d.index === index)) continue;
    if ((await persistedHow(o.persist, mountPoint)) !== 'none') continue;
    if ((await readdir(mountPoint).catch(() => [])).length > 0) continue;
    const partial = `${image}.partial`;
    try {
      await (await open(partial, 'wx', 0o600)).close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // another run took this index
      throw err;
    }
    try {
      await preallocate(partial, sizeBytes);
      await makeFilesystem(partial, 'ext4', 'preallocated-image');
      await rename(partial, image);
      await syncDir(o.imageDir);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    await complete(o, await describe(o, index));
    return { disk: await describe(o, index), action: 'created' };
  }
}

/**
 * Unmounts, detaches, un-persists and deletes mount disk N. A disk holding anything besides
 * lost+found (or one that is not mounted, so it cannot be checked) is kept unless `force`.
 */
export async function removeDisk(o: MountDiskOptions, index: number, force: boolean): Promise<MountDisk> {
  const disk = await describe(o, index);
  if (!disk.imageExists && !disk.mounted && disk.persisted === 'none') {
    throw new Error(`there is no mount disk ${disk.mountPoint}`);
  }
  if (!force) {
    if (!disk.mounted) {
      throw new Error(
        `${disk.mountPoint} is not mounted, so it cannot be checked for data: mount it or pass --force`,
      );
    }
    const content = (await readdir(disk.mountPoint)).filter((n) => n !== 'lost+found');
    if (content.length > 0) {
      const shown = content.slice(0, 5).join(', ') + (content.length > 5 ? ', ...' : '');
      throw new Error(`${disk.mountPoint} holds data (${shown}): move it away or pass --force to delete it`);
    }
  }
  if (disk.mounted) await unmount(disk.mountPoint);
  for (const device of await loopsFor(disk.image)) await detachLoop(device);
  await removeMountUnit(o.persist, disk.mountPoint);
  await removeFstabEntry(o.persist.fstab, disk.mountPoint);
  await rm(disk.image, { force: true });
  await rmdir(disk.mountPoint).catch(() => undefined);
  return disk;
}

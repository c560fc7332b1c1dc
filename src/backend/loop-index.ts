import {
  inodeKey,
  type LoopDevice,
  listLoops,
  readLoop,
  unreachableLoopsByInode,
} from '../system/loop-sysfs.js';

/**
 * Which loop device serves which image, kept in memory so that a request looks up one image's
 * device instead of scanning every loop device on the host. Built from one scan of sysfs at
 * start-up, updated by our own attaches, and every answer is checked against the kernel (one sysfs
 * read of that device): a device detached or reused behind our back is dropped, never trusted.
 */
export class LoopIndex {
  private readonly byImage = new Map<string, string>();
  /** Devices attached in another mount namespace (a restarted managed plugin), by file identity. */
  private readonly byInode = new Map<string, LoopDevice>();
  private scanned: Promise<void> | undefined;

  /** The kernel's view at start-up; later lookups need no scan. */
  private scan(): Promise<void> {
    this.scanned ??= (async () => {
      const loops = await listLoops();
      // A device attached by us is never autoclear; prefer it when a pending one shares the image.
      for (const l of loops.sort((a, b) => Number(b.autoclear) - Number(a.autoclear))) {
        this.byImage.set(l.backingFile, l.device);
      }
      const byDevice = new Map(loops.map((l) => [l.device, l]));
      for (const [key, device] of await unreachableLoopsByInode(loops)) {
        const loop = byDevice.get(device);
        if (loop) this.byInode.set(key, loop);
      }
    })();
    return this.scanned;
  }

  /** The loop device serving `image` now, if any (possibly with its detach pending). */
  async find(image: string): Promise<LoopDevice | undefined> {
    await this.scan();
    const device = this.byImage.get(image);
    if (device !== undefined) {
      const loop = readLoop(device);
      if (loop?.backingFile === image) return loop;
      this.byImage.delete(image);
    }
    if (this.byInode.size === 0) return undefined;
    const key = (await inodeKey(image)) ?? '';
    const known = this.byInode.get(key);
    if (known === undefined) return undefined;
    const loop = readLoop(known.device);
    if (loop?.backingFile === known.backingFile) return loop;
    this.byInode.delete(key);
    return undefined;
  }

  /** Records a device we just attached. */
  attached(image: string, device: string): void {
    this.byImage.set(image, device);
  }
}

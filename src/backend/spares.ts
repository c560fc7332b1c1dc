import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { FsType } from '../core/fs-type.js';
import { syncFile } from '../state/atomic.js';
import { createSparse } from '../system/allocate.js';
import { removeLostFound } from '../system/debugfs.js';
import type { Libc } from '../system/libc.js';
import { ext4Features, makeFilesystem } from '../system/mkfs.js';
import { type Ext4Template, templateFrom, writeFromTemplate } from './ext4-template.js';

/** What a spare is formatted as; only sparse images are kept spare (a preallocated one costs its size). */
export interface SpareSpec {
  fs: FsType;
  sizeBytes: number;
}

/** Distinct sizes kept warm: the default and the most recently created others. */
const MAX_SPECS = 4;

/**
 * A spare is made once the backend has done no work for this long: a lull between requests
 * (a container starting after its Mount, a shell script between its steps). Formatting competes
 * with requests for the CPU and the host filesystem's journal (a Create's fsync measured 1.4 ms
 * alone, 6-13 ms beside a running mkfs), so it waits for the lull instead of starting beside the
 * next request; the mkfs process also runs at the lowest CPU priority. Under a steady stream of
 * requests the spares run out and Creates format their own, as without a pool.
 */
const QUIET_MS = 10;

/** The first spares wait this long after start-up, which reconciles and collects meanwhile. */
const STARTUP_DELAY_MS = 1_000;

/** Niceness of the mkfs that formats a spare: it gets the CPU that requests leave. */
const SPARE_NICENESS = 19;

const keyOf = (spec: SpareSpec) => `${spec.fs}-${spec.sizeBytes}`;

/** The root a spare has: mkfs's owner and mode, no lost+found. */
export const SPARE_ROOT = { uid: 0, gid: 0, mode: 0o755 } as const;

/**
 * Sparse images formatted ahead of time, so that a Create of a size seen before skips mkfs, the
 * one process on the lifecycle (about half of it): `depth` spares per size, renamed into place by
 * a Create and made again at the next lull. For ext4 (with the FFI) each size also has a template,
 * formatted once by mkfs: spares are written from it with no process, and when a burst of Creates
 * empties the spares a Create writes its own image from it (a few ms for 1G, against about 12 ms
 * of mkfs). Every image written from a template gets a new UUID and directory hash seed in each
 * of its superblocks (metadata_csum_seed makes that all the UUID touches); an xfs spare is made by
 * its own mkfs. Everything here is made off the request path, one at a time, as complete files
 * (written under a temp name, then renamed); start-up deletes them all and warms anew, so they
 * have this version's format.
 */
export class SparePool {
  /** Most recently wanted first; the first is the daemon's default. */
  private wanted: SpareSpec[] = [];
  private readonly stock = new Map<string, string[]>();
  private readonly templates = new Map<string, Ext4Template>();
  /** The FFI, where ext4 templates can be made: they need SEEK_DATA and metadata_csum_seed. */
  private readonly templateLibc: Libc | undefined;
  private filling: Promise<void> | undefined;
  private refillAgain = false;
  private quietTimer: NodeJS.Timeout | undefined;
  /** Backend operations running now (see during). */
  private active = 0;
  /** Spares are missing: a refill is due at the next lull. */
  private due = false;

  /**
   * `depth`: spares kept per size (0 turns the pool off); `defaults`: the size warmed first;
   * `libc`: the FFI, without which ext4 gets spares instead of templates.
   */
  constructor(
    private readonly dir: string,
    private readonly depth: number,
    private readonly defaults: SpareSpec,
    private readonly log: Logger,
    libc?: Libc,
  ) {
    this.templateLibc = ext4Features().includes('metadata_csum_seed') ? libc : undefined;
  }

  /** Clears what an earlier run left and starts warming the default size. */
  async start(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    if (this.depth === 0) return;
    await mkdir(this.dir, { mode: 0o700 });
    this.want(this.defaults);
    this.refillAtLull(STARTUP_DELAY_MS);
  }

  /**
   * Puts a formatted image for `spec` at `dest` (which must not exist), from a template or a spare;
   * false when none is ready, and the caller formats one itself.
   */
  async place(spec: SpareSpec, dest: string): Promise<boolean> {
    if (this.depth === 0) return false;
    const key = keyOf(spec);
    this.want(spec);
    this.refillAtLull();
    const spare = this.stock.get(key)?.pop();
    if (
      spare &&
      (await rename(spare, dest).then(
        () => true,
        () => false,
      ))
    )
      return true;
    // Spares ran out (a burst): the template still makes one in a few milliseconds.
    const template = this.templates.get(key);
    if (!template) return false;
    try {
      await writeFromTemplate(template, dest);
      return true;
    } catch (err) {
      // The size was evicted meanwhile and its template deleted: the caller formats instead.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && this.templates.get(key) !== template)
        return false;
      throw err;
    }
  }

  /** Runs a backend operation; spares are formatted only once none has run for QUIET_MS. */
  async during<T>(work: () => Promise<T>): Promise<T> {
    this.active++;
    clearTimeout(this.quietTimer);
    try {
      return await work();
    } finally {
      this.active--;
      if (this.due) this.refillAtLull();
    }
  }

  private refillAtLull(delayMs = QUIET_MS): void {
    this.due = true;
    clearTimeout(this.quietTimer);
    if (this.active > 0) return;
    this.quietTimer = setTimeout(() => {
      this.due = false;
      this.refill();
    }, delayMs).unref();
  }

  /** Resolves when no spare is being made. */
  async idle(): Promise<void> {
    while (this.filling) await this.filling;
  }

  private want(spec: SpareSpec): void {
    const key = keyOf(spec);
    const [defaults, ...others] = this.wanted;
    const rest = others.filter((s) => keyOf(s) !== key);
    this.wanted =
      defaults === undefined || keyOf(defaults) === key ? [spec, ...rest] : [defaults, spec, ...rest];
    for (const evicted of this.wanted.splice(MAX_SPECS)) this.discard(keyOf(evicted));
  }

  private discard(key: string): void {
    for (const path of this.stock.get(key) ?? []) void rm(path, { force: true });
    this.stock.delete(key);
    const template = this.templates.get(key);
    if (template) void rm(template.path, { force: true });
    this.templates.delete(key);
  }

  private refill(): void {
    if (this.filling) {
      this.refillAgain = true;
      return;
    }
    this.filling = this.fill()
      .catch((err) =>
        this.log.warn(
          { err: (err as Error).message, dir: this.dir },
          'could not format a spare image; Creates format their own meanwhile',
        ),
      )
      .finally(() => {
        this.filling = undefined;
        if (this.refillAgain) {
          this.refillAgain = false;
          this.refill();
        }
      });
  }

  private async fill(): Promise<void> {
    for (const spec of this.wanted) {
      const key = keyOf(spec);
      const templateLibc = spec.fs === 'ext4' ? this.templateLibc : undefined;
      for (;;) {
        if (!this.wanted.includes(spec)) break;
        // Work arrived: the rest waits for the next lull.
        if (this.active > 0) {
          this.due = true;
          return;
        }
        const name = randomBytes(6).toString('hex');
        const temp = join(this.dir, `.tmp-${name}`);
        if (templateLibc && !this.templates.has(key)) {
          const template = await this.deletingOnFailure(temp, async () => {
            await this.format(spec, temp);
            return templateFrom(templateLibc, temp, join(this.dir, `${key}.template`), spec.sizeBytes);
          });
          if (this.wanted.includes(spec)) this.templates.set(key, template);
          else await rm(template.path, { force: true });
        } else if ((this.stock.get(key)?.length ?? 0) < this.depth) {
          const spare = join(this.dir, `${key}-${name}.img`);
          await this.deletingOnFailure(temp, async () => {
            // From the size's template when there is one (no process), else by mkfs.
            const template = this.templates.get(key);
            await (template ? writeFromTemplate(template, temp) : this.format(spec, temp));
            await rename(temp, spare);
          });
          if (this.wanted.includes(spec)) this.stock.set(key, [...(this.stock.get(key) ?? []), spare]);
          else await rm(spare, { force: true });
        } else break;
      }
    }
  }

  /**
   * A new sparse image at `temp` formatted by mkfs, its root made ready for the default owner and
   * mode (mkfs's own: root, 0755) so that a Create asking for those records a volume whose first
   * Mount prepares nothing, and flushed here, off the request path: otherwise the Create that takes
   * it pays for writing the new filesystem's metadata, as its fsyncs commit the journal that
   * orders that data.
   */
  private async format(spec: SpareSpec, temp: string): Promise<void> {
    await createSparse(temp, spec.sizeBytes);
    await makeFilesystem(temp, spec.fs, 'sparse-image', SPARE_NICENESS);
    if (spec.fs === 'ext4') await removeLostFound(temp, SPARE_NICENESS);
    await syncFile(temp);
  }

  private async deletingOnFailure<T>(temp: string, make: () => Promise<T>): Promise<T> {
    try {
      return await make();
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }
}

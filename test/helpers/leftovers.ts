import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Layout } from '../../src/state/layout.js';

/**
 * What interrupted work leaves under a data root beside volume `kept`: a Create killed after staging
 * its image, a Remove killed mid-way, a stray file, a metadata write killed before its rename.
 * Start-up sweeps all four (service-restart over the kernel, service-reconcile over the fake).
 */
export async function plantLeftovers(layout: Layout, kept: string): Promise<void> {
  await mkdir(join(layout.staging, 'half-created', 'mnt'), { recursive: true });
  await writeFile(join(layout.staging, 'half-created', 'disk.img'), 'partial');
  await mkdir(join(layout.trash, 'half-removed'), { recursive: true });
  await writeFile(join(layout.trash, 'half-removed', 'volume.json'), '{}');
  await writeFile(join(layout.trash, 'stray-file'), '');
  await writeFile(join(layout.volume(kept).dir, '.tmp-0123456789ab'), '{"half');
}

/** Nothing of plantLeftovers is left; volume `kept` is as it was. */
export async function expectSwept(layout: Layout, kept: string): Promise<void> {
  expect(await readdir(layout.staging)).toEqual([]);
  expect(await readdir(layout.trash)).toEqual([]);
  expect((await readdir(layout.volume(kept).dir)).sort()).toEqual(['disk.img', 'volume.json']);
}

import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMounts } from '../../src/system/mountinfo.js';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { type PluginProcess, startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';
import { type Command, Model } from './model.js';

/** Runs per property; raise for a longer hunt: LOOPVOL_PROPERTY_RUNS=200. */
const RUNS = Number(process.env.LOOPVOL_PROPERTY_RUNS ?? 40);

const goodNames = ['alpha', 'beta.1', 'gamma_2'];
const hostileNames: unknown[] = [
  '..',
  '../x',
  'a/b',
  '',
  'x'.repeat(300),
  'ü-name',
  'nul\u0000x',
  'has space',
  '-x',
  '.x',
  'a',
  '/etc/passwd',
  'volumes/../../x',
  5,
  null,
  {},
  ['alpha'],
  true,
];
const name = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...goodNames) },
  { weight: 1, arbitrary: fc.constantFrom(...hostileNames) },
);
const ids: unknown[] = [undefined, '', null, 'a'.repeat(64), 'b'.repeat(64), 'task:1'];
const hostileIds: unknown[] = [
  '../x',
  'a b',
  'x'.repeat(300),
  'toString',
  '__proto__',
  'constructor',
  7,
  {},
  'ü',
];
const id = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...ids) },
  { weight: 1, arbitrary: fc.constantFrom(...hostileIds) },
);

const validOpts = fc.oneof(
  fc.constant({}),
  fc.constant(null),
  fc.integer({ min: 16, max: 40 }).map((mb) => ({ size: `${mb}M` })),
  fc.constant({ size: '24M', sparse: 'false', mode: '0750', uid: '1000', gid: '1000' }),
);
const hostileOpts: unknown[] = [
  { size: '0' },
  { size: '-1' },
  { size: '1e99' },
  { size: 'abc' },
  { size: '8M' },
  { size: '99T' },
  { fs: 'zfs' },
  { fs: 'xfs', size: '16M' },
  { bogus: '1' },
  { size: 16 },
  { mode: '999' },
  { uid: '-1' },
  { sparse: 'yes' },
  [],
  'size=1G',
  42,
];
const createCmd = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ name, opts: validOpts })
      .map(({ name, opts }) => ({ kind: 'create' as const, name, opts, optsValid: true })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ name, opts: fc.constantFrom(...hostileOpts) })
      .map(({ name, opts }) => ({ kind: 'create' as const, name, opts, optsValid: false })),
  },
  {
    weight: 1,
    arbitrary: name.map((name) => ({
      kind: 'create' as const,
      name,
      opts: { backend: 'disk' },
      optsValid: 'if-exists' as const,
    })),
  },
);
const garbage = fc.record({
  method: fc.constantFrom(
    'VolumeDriver.Create',
    'VolumeDriver.Mount',
    'VolumeDriver.Get',
    'VolumeDriver.Remove',
  ),
  body: fc.oneof(
    fc.string().map((s) => `{${s}`),
    fc.constantFrom('[]', '5', 'null', '"alpha"', '', '{"Name":', '\u0000\u0001', '{"Name":"alpha"'),
    fc.uint8Array({ maxLength: 64 }).map((b) => `\u00ff${Buffer.from(b).toString('latin1')}`),
  ),
});
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: createCmd },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constantFrom('mount' as const, 'unmount' as const), name, id }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constantFrom('remove' as const, 'get' as const, 'path' as const), name }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'list' as const }) },
  { weight: 1, arbitrary: garbage.map((g) => ({ kind: 'garbage' as const, ...g })) },
);

function request(c: Command): [string, unknown] {
  switch (c.kind) {
    case 'create':
      return ['VolumeDriver.Create', { Name: c.name, Opts: c.opts }];
    case 'mount':
      return ['VolumeDriver.Mount', { Name: c.name, ID: c.id }];
    case 'unmount':
      return ['VolumeDriver.Unmount', { Name: c.name, ID: c.id }];
    case 'remove':
      return ['VolumeDriver.Remove', { Name: c.name }];
    case 'get':
      return ['VolumeDriver.Get', { Name: c.name }];
    case 'path':
      return ['VolumeDriver.Path', { Name: c.name }];
    case 'list':
      return ['VolumeDriver.List', {}];
    case 'garbage':
      return [c.method, c.body];
  }
}

/**
 * Mounts outside every test's temp dir: the plugin under test may only mount inside its own,
 * and other test files (dockerd, other plugins) running in parallel only inside theirs.
 */
const mountsOutside = async () =>
  (await readMounts())
    .map((m) => m.mountPoint)
    .filter((p) => !p.startsWith(join(tmpdir(), 'loopvol-')))
    .sort();

describe.runIf(storageAvailable())('the HTTP API under random and hostile request sequences', () => {
  let dir: string;
  let plugin: PluginProcess;
  let outsideBefore: string[];
  let tmpBefore: string[];

  beforeAll(async () => {
    dir = await makeTempDir('property');
    plugin = await startPlugin(dir, { args: ['--default-size', '16M', '--log-level', 'warn'] });
    outsideBefore = await mountsOutside();
    tmpBefore = (await readdir(tmpdir())).filter((e) => !e.startsWith('loopvol-') && !e.startsWith('vitest'));
  });
  afterAll(async () => {
    await plugin?.stop();
    if (dir) await cleanupTempDir(dir);
  });

  /**
   * Empties the plugin through its API, reading holders from its own records (not the model: a
   * failing run may have diverged from it), so the next run starts clean.
   */
  async function resetPlugin() {
    const listed = (await plugin.call('VolumeDriver.List', {})).body.Volumes as { Name: string }[];
    for (const { Name } of listed) {
      // holders.json appears at the first Mount.
      const holders = JSON.parse(
        await readFile(join(plugin.dataRoot, 'volumes', Name, 'holders.json'), 'utf8').catch(() => '{}'),
      ) as Record<string, number>;
      for (const [ID, n] of Object.entries(holders)) {
        for (let i = 0; i < n; i++) await plugin.call('VolumeDriver.Unmount', { Name, ID });
      }
      await plugin.call('VolumeDriver.Remove', { Name });
    }
  }

  /** Everything the kernel says must match the model. */
  async function checkKernel(model: Model) {
    const kernel = await kernelStateUnder(plugin.dataRoot);
    const held = [...model.volumes]
      .filter(([, h]) => h.size > 0)
      .map(([n]) => join(plugin.dataRoot, 'volumes', n, 'mnt'));
    expect(kernel.mounts.sort()).toEqual(held.sort());
    expect(kernel.loops.length).toBe(held.length);
  }

  it('answers every request with JSON as the model says, never crashing or leaving its data root', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 15, maxLength: 40 }), async (commands) => {
        const model = new Model();
        try {
          for (const c of commands) {
            const expected = model.apply(c);
            const [method, body] = request(c);
            const reply = await plugin.call(method, body);
            expect(reply.body, `not JSON: ${reply.raw}`).not.toHaveProperty('unparsed');
            const err = reply.body.Err;
            expect(
              reply.status === 200 && err === undefined,
              `${JSON.stringify(c)} → ${reply.status} ${reply.raw}`,
            ).toBe(expected);
            if (!expected) {
              expect(typeof err).toBe('string');
              expect(String(err)).not.toMatch(/\n\s+at |node_modules|\.[jt]s:\d+/);
            }
            expect(plugin.child.exitCode).toBeNull();
            const listed = await plugin.call('VolumeDriver.List', {});
            expect((listed.body.Volumes as { Name: string }[]).map((v) => v.Name)).toEqual(
              [...model.volumes.keys()].sort(),
            );
            await checkKernel(model);
          }
        } finally {
          await resetPlugin();
        }
        expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
        expect((await plugin.call('VolumeDriver.List', {})).body.Volumes).toEqual([]);
      }),
      { numRuns: RUNS, verbose: 1 },
    );
    expect(await mountsOutside()).toEqual(outsideBefore);
    expect((await readdir(dir)).sort()).toEqual(['plugin.sock', 'root']);
    const tmpAfter = (await readdir(tmpdir())).filter(
      (e) => !e.startsWith('loopvol-') && !e.startsWith('vitest'),
    );
    expect(tmpAfter.filter((e) => !tmpBefore.includes(e))).toEqual([]);
  });
});

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { startPlugin } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/** `npm pack` makes the package an operator installs: both commands, compiled code, nothing else. */
describe.runIf(storageAvailable())('npm pack', () => {
  let dir: string;
  let files: string[];
  let tarball: string;

  beforeAll(async () => {
    dir = await makeTempDir('npm-pack');
    // Packs the dist/ that `npm test` built; without --ignore-scripts, pack would rebuild it
    // (prepare) under the other test files' daemons.
    const { stdout } = await execa('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
      cwd: ROOT,
    });
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    if (!packed) throw new Error(`npm pack printed no package: ${stdout}`);
    files = packed.files.map((f) => f.path).sort();
    tarball = join(dir, packed.filename);
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  it('holds both executables, the compiled code and nothing else', () => {
    expect(files).toEqual(
      expect.arrayContaining(['bin/dvdcli', 'bin/loopvol', 'dist/cli/main.js', 'package.json']),
    );
    const unexpected = files.filter(
      (f) => !/^(bin\/(loopvol|dvdcli)|dist\/.+\.js|package\.json|README\.md|LICENSE)$/.test(f),
    );
    expect(unexpected).toEqual([]);
    expect(
      files.some((f) => f.endsWith('.map') || f.startsWith('test/') || f.startsWith('benchmarks/')),
    ).toBe(false);
  });

  it('installs into a prefix of its own, and both commands run from there', async () => {
    const prefix = join(dir, 'prefix');
    await mkdir(prefix);
    // The runtime dependencies come from the registry, as on an operator's host.
    await execa('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball]);
    const installed = (name: string) => join(prefix, 'bin', name);

    const help = await execa(installed('loopvol'), ['help']);
    expect(help.stdout).toContain('usage: loopvol <command>');
    const version = await execa(installed('dvdcli'), ['version']);
    expect(version.stdout).toMatch(/^SemVer: \d+\.\d+\.\d+$/m);

    // The installed daemon serves a volume lifecycle.
    const plugin = await startPlugin(dir, { bin: installed('loopvol'), args: ['--spares', '0'] });
    try {
      const ok = async (method: string, body: object) => {
        const reply = await plugin.call(method, body);
        expect(reply.status, reply.raw).toBe(200);
        return reply.body;
      };
      await ok('VolumeDriver.Create', { Name: 'packed', Opts: { size: '64M' } });
      const { Mountpoint } = await ok('VolumeDriver.Mount', { Name: 'packed', ID: 'x' });
      expect(Mountpoint).toBe(join(plugin.dataRoot, 'volumes', 'packed', 'mnt'));
      await ok('VolumeDriver.Unmount', { Name: 'packed', ID: 'x' });
      await ok('VolumeDriver.Remove', { Name: 'packed' });
    } finally {
      expect(await plugin.stop()).toBe(0);
    }
    expect(await kernelStateUnder(dir)).toEqual({ mounts: [], loops: [] });
  });
});

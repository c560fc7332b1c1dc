import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDir, kernelStateUnder, makeTempDir } from '../helpers/kernel.js';
import { BIN, type PluginProcess, startPlugin, tableRow } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

/** loopvol ls / inspect / create / rm against a running daemon, over its socket. */
describe.runIf(storageAvailable())('operator commands against a running daemon', () => {
  let dir: string;
  let plugin: PluginProcess;
  const loopvol = (...args: string[]) =>
    execa(process.execPath, [BIN, ...args, '--socket', plugin.socket], { reject: false });

  beforeAll(async () => {
    dir = await makeTempDir('cli-volumes');
    plugin = await startPlugin(dir, { args: ['--spares', '0'] });
  });
  afterAll(async () => {
    await plugin?.stop();
    if (dir) await cleanupTempDir(dir);
  });

  it('creates, lists in a table and as JSON, inspects, refuses to remove while mounted, removes', async () => {
    expect(await loopvol('create', 'pg', '-o', 'size=64M', '-o', 'fs=ext4')).toMatchObject({
      exitCode: 0,
      stdout: 'pg',
    });
    expect((await loopvol('create', 'logs', '-o', 'size=32M')).exitCode).toBe(0);
    // As a container holds it.
    const mount = await plugin.call('VolumeDriver.Mount', { Name: 'pg', ID: 'c'.repeat(64) });
    expect(mount.status, mount.raw).toBe(200);

    const table = await loopvol('ls');
    expect(table.exitCode, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.split('\n');
    expect(header?.trim().split(/\s{2,}/)).toEqual([
      'NAME',
      'SIZE',
      'USED',
      'ALLOCATED',
      'FS',
      'ENCRYPTED',
      'MOUNTED',
      'HOLDERS',
      'MOUNTPOINT',
    ]);
    const pg = tableRow(table.stdout, 'pg');
    expect(pg).toMatchObject([
      'pg',
      '64M',
      expect.stringMatching(/\d/),
      expect.stringMatching(/\d/),
      'ext4',
      'no',
      'yes',
      '1',
      join(plugin.dataRoot, 'volumes', 'pg', 'mnt'),
    ]);
    expect(rows.find((r) => r.trim().startsWith('logs '))).toMatch(/logs\s+32M\s+-\s+.*\s+no\s+0\s+-/);
    expect(table.stdout).toMatch(/^data root: 96M provisioned, .* allocated, .* free$/m);

    const json = await loopvol('ls', '--json');
    const listed = JSON.parse(json.stdout) as { Name: string; Status: Record<string, unknown> }[];
    expect(listed.map((v) => v.Name)).toEqual(['logs', 'pg']);
    expect(listed[1]?.Status).toMatchObject({ mounted: true, holders: 1, size: 64 * 1024 * 1024 });

    const inspect = await loopvol('inspect', 'pg');
    expect(inspect.stdout).toMatch(/^Name: pg$/m);
    expect(inspect.stdout).toMatch(/^holders: 1$/m);
    expect(JSON.parse((await loopvol('inspect', 'pg', '--json')).stdout)).toMatchObject({
      Name: 'pg',
      Status: { fs: 'ext4' },
    });

    const refused = await loopvol('rm', 'pg');
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^loopvol: VolumeDriver.Remove: volume pg is in use by /);
    await plugin.call('VolumeDriver.Unmount', { Name: 'pg', ID: 'c'.repeat(64) });
    expect(await loopvol('rm', 'pg')).toMatchObject({ exitCode: 0, stdout: 'pg' });
    expect((await loopvol('rm', 'logs')).exitCode).toBe(0);
    expect(JSON.parse((await loopvol('ls', '--json')).stdout)).toEqual([]);
    expect(await kernelStateUnder(plugin.dataRoot)).toEqual({ mounts: [], loops: [] });
  });

  it('exits 1 with the daemon message for a missing volume, and 2 for a wrong command line', async () => {
    const missing = await loopvol('inspect', 'nosuch');
    expect(missing).toMatchObject({ exitCode: 1, stdout: '' });
    expect(missing.stderr).toContain('volume nosuch does not exist');
    expect((await loopvol('inspect')).exitCode).toBe(2);
    expect((await loopvol('ls', '--frobnicate')).exitCode).toBe(2);
    expect((await loopvol('create', 'xx', '-o', 'novalue')).exitCode).toBe(2);
    const bad = await loopvol('create', 'xx', '-o', 'mountopts=exec');
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain('"exec" is not allowed');
  });
});

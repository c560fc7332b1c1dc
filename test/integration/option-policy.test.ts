import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { pluginCases } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;

/**
 * --allow-options / --deny-options on a real daemon: what dockerd sends and what dvdcli sends for
 * Mesos (`--volumeopts`) both arrive at VolumeDriver.Create and meet the same policy.
 */
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount']))('the operator option policy', () => {
  const cases = pluginCases();

  it('refuses what the operator denied or did not allow, from dockerd and dvdcli alike', async () => {
    const dir = await cases.begin('option-policy');
    await mkdir(join(dir, 'sockets'));
    const p = await cases.start({
      socket: join(dir, 'sockets', 'loopvol.sock'),
      args: ['--spares', '0', '--allow-options', 'size,fs,backup,from', '--deny-options', 'backup'],
    });
    const denied = await p.call('VolumeDriver.Create', { Name: 'vola', Opts: { size: '64M', backup: '1h' } });
    expect(denied.status).toBe(400);
    expect(denied.body.Err).toBe(
      'cannot create volume vola: option backup is not allowed on this host (--deny-options backup): ask the operator',
    );
    const unlisted = await p.call('VolumeDriver.Create', {
      Name: 'vola',
      Opts: { size: '64M', mode: '0700' },
    });
    expect(unlisted.body.Err).toMatch(
      /option mode is not allowed on this host \(--allow-options size,fs,backup,from\)/,
    );

    const dvdcli = await execa(
      process.execPath,
      [
        DVDCLI,
        'mount',
        '--volumedriver=loopvol',
        '--volumename=volb',
        '--volumeopts=size=64M,restore-other=true',
      ],
      {
        reject: false,
        env: { LOOPVOL_PLUGIN_SOCKETS_DIR: join(dir, 'sockets'), LOOPVOL_PLUGIN_SPEC_DIRS: dir },
      },
    );
    expect(dvdcli.exitCode).not.toBe(0);
    expect(dvdcli.stderr).toMatch(
      /option restore-other is not allowed on this host \(--allow-options size,fs,backup,from\)/,
    );

    expect((await p.call('VolumeDriver.List', {})).body.Volumes).toEqual([]);
    const created = await p.call('VolumeDriver.Create', { Name: 'volc', Opts: { size: '64M', fs: 'ext4' } });
    expect(created.status, created.raw).toBe(200);
    expect((await p.call('VolumeDriver.Remove', { Name: 'volc' })).status).toBe(200);
  });

  it('refuses the privileged restore-other unless allowed by name', async () => {
    await cases.begin('option-policy-privileged');
    const p = await cases.start({ args: ['--spares', '0'] });
    const refused = await p.call('VolumeDriver.Create', {
      Name: 'vola',
      Opts: { from: 'backup', 'restore-other': 'true' },
    });
    expect(refused.body.Err).toMatch(
      /option restore-other is not allowed on this host \(privileged: only with --allow-options naming restore-other\)/,
    );
  });

  it('does not start with an option list naming a key that is no option', async () => {
    await cases.begin('option-policy-typo');
    await expect(cases.start({ env: { LOOPVOL_DENY_OPTIONS: 'bakup' } })).rejects.toThrow(
      /--deny-options names unknown option "bakup": options are size, fs/,
    );
  });
});

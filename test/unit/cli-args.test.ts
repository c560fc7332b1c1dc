import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/cli/commands.js';
import { ACCEPTED_OPTIONS } from '../../src/core/options.js';
import { BIN } from '../helpers/plugin.js';

/**
 * `loopvol` command lines that never reach a daemon (bin/loopvol runs dist/: build first): help,
 * version, and the exit codes scripts rely on (2: the command line is wrong; 1: refused or
 * unreachable).
 */
const loopvol = (...args: string[]) =>
  execa(process.execPath, [BIN, ...args], {
    reject: false,
    // No daemon settings from the test's environment, and a socket nothing listens on.
    env: { LOOPVOL_SOCKET: '/nonexistent/loopvol-cli-test.sock' },
    extendEnv: false,
  });

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const NAMES = Object.keys(COMMANDS);

describe.concurrent('loopvol --help', () => {
  it.each(NAMES)(
    '%s --help shows its usage, every flag it takes and an example, and exits 0',
    async (name) => {
      const result = await loopvol(name, '--help');
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).toMatch(
        name === 'dvdcli' ? /^usage: dvdcli / : new RegExp(`^usage: loopvol ${name}\\b`),
      );
      if (name !== 'dvdcli') expect(result.stdout).toMatch(/\nexample:\n {2}loopvol /);
      const { options } = await (COMMANDS[name] as (typeof COMMANDS)[string]).load();
      for (const [flag, o] of Object.entries(options)) {
        expect(result.stdout, `--${flag}`).toContain(o.short ? `-${o.short}` : `--${flag}`);
      }
      expect((await loopvol('help', name)).stdout).toBe(result.stdout);
    },
  );

  it('lists the -o keys in create --help, from the option table', async () => {
    const { stdout } = await loopvol('create', '-h');
    for (const key of ACCEPTED_OPTIONS) expect(stdout).toMatch(new RegExp(`^ {2}${key}=`, 'm'));
  });

  it('shows units: what a bare number means', async () => {
    expect((await loopvol('serve', '--help')).stdout).toMatch(
      /--default-size SIZE[\s\S]*a bare number is GiB/,
    );
    expect((await loopvol('resize', '--help')).stdout.replace(/\s+/g, ' ')).toContain('a bare number is GiB');
  });

  it('lists every command in loopvol --help', async () => {
    const result = await loopvol('--help');
    expect(result.exitCode).toBe(0);
    for (const name of NAMES) expect(result.stdout).toMatch(new RegExp(`^ {2}${name} `, 'm'));
  });
});

describe('loopvol --version', () => {
  it.each([['--version'], ['version']])('%s prints the package version', async (arg) => {
    expect(await loopvol(arg)).toMatchObject({ exitCode: 0, stdout: `loopvol ${version}` });
  });
});

describe.concurrent('usage errors', () => {
  it.each([
    [['frobnicate'], 'unknown command "frobnicate"', 'loopvol --help'],
    [['ls', '--frobnicate'], "Unknown option '--frobnicate'", 'loopvol ls --help'],
    [['ls', 'extra'], 'unexpected argument', 'loopvol ls --help'],
    [['inspect'], 'missing the volume NAME', 'loopvol inspect --help'],
    [['create', 'x', '-o', 'novalue'], '-o "novalue" is not KEY=VALUE', 'loopvol create --help'],
    [['rm', 'a', 'b'], 'unexpected argument "b"', 'loopvol rm --help'],
    [['resize'], 'missing the volume NAME and the new SIZE', 'loopvol resize --help'],
    [['resize', 'pg'], 'missing the new SIZE', 'loopvol resize --help'],
    [['resize', 'pg', '1G', 'more'], 'unexpected argument "more"', 'loopvol resize --help'],
    [['ls', '-o', 'size=1G'], "Unknown option '-o'", 'loopvol ls --help'],
    [['fsck', 'pg', '--dry-run'], "Unknown option '--dry-run'", 'loopvol fsck --help'],
    [['gc', '--repair'], "Unknown option '--repair'", 'loopvol gc --help'],
    [['snapshot'], 'missing the action', 'loopvol snapshot --help'],
    [['snapshot', 'take', 'pg'], 'unknown snapshot action "take"', 'loopvol snapshot --help'],
    [['snapshot', 'rm', 'pg'], 'missing the snapshot SNAP', 'loopvol snapshot --help'],
    [['backup'], 'missing the volume NAME', 'loopvol backup --help'],
    [['backup', 'verify'], 'missing the volume NAME to verify', 'loopvol backup --help'],
    [['backup', 'pg', '--from', 'abc'], "Unknown option '--from'", 'loopvol backup --help'],
    [['backups', 'a', 'b'], 'unexpected argument "b"', 'loopvol backups --help'],
    [['restore'], 'missing the volume NAME', 'loopvol restore --help'],
    [['doctor', 'now'], 'unexpected argument "now"', 'loopvol doctor --help'],
    [['mount-disk'], 'missing the action', 'loopvol mount-disk --help'],
    [['mount-disk', 'grow'], 'unknown mount-disk action "grow"', 'loopvol mount-disk --help'],
    [['mount-disk', 'create'], '--size is required', 'loopvol mount-disk --help'],
    [['mount-disk', 'create', '--size', 'lots'], 'is not a size', 'loopvol mount-disk --help'],
    [
      ['mount-disk', 'create', '--size', '1G', '--root', 'rel'],
      '--root must be an absolute path',
      'loopvol mount-disk --help',
    ],
    [['mount-disk', 'rm', 'x'], "rm takes the disk's number", 'loopvol mount-disk --help'],
    [['mesos-resources', '--role', 'bad role'], 'is not a Mesos role', 'loopvol mesos-resources --help'],
    [['mesos-resources', 'now'], 'unexpected argument "now"', 'loopvol mesos-resources --help'],
    [['version', 'x'], 'unexpected argument "x"', 'loopvol version --help'],
    [['serve', '--frobnicate'], "Unknown option '--frobnicate'", 'loopvol serve --help'],
    [['serve', 'now'], 'unexpected argument "now"', 'loopvol serve --help'],
    [['serve', '--default-fs', 'zfs'], '--default-fs must be ext4 or xfs', 'loopvol serve --help'],
    [
      ['serve', '--restore-missing'],
      '--restore-missing (env LOOPVOL_RESTORE_MISSING) needs --cluster (env LOOPVOL_CLUSTER) and --backup-repo',
      'loopvol serve --help',
    ],
    [
      ['serve', '--backup-keep', '7'],
      '--backup-keep (env LOOPVOL_BACKUP_KEEP) needs --backup-repo',
      'loopvol serve --help',
    ],
    [
      ['serve', '--backup-password-file', '/etc/pw'],
      '--backup-password-file (env LOOPVOL_BACKUP_PASSWORD_FILE) needs --backup-repo',
      'loopvol serve --help',
    ],
    [['serve', '--node-id', 'a'], '--node-id (env LOOPVOL_NODE_ID) needs --cluster', 'loopvol serve --help'],
  ])('%j exits 2 with one line naming what is wrong', async (args, message, help) => {
    const result = await loopvol(...args);
    expect(result.exitCode, result.stderr).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr.split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(message);
    expect(result.stderr).toContain(`(see ${help})`);
  });
});

describe.concurrent('an unreachable daemon', () => {
  it.each([['ls'], ['inspect', 'pg'], ['create', 'pg', '-o', 'size=1G']])(
    '%j exits 1 with the doctor hint naming the socket',
    async (...args) => {
      const result = await loopvol(...args);
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toBe(
        'loopvol: no loopvol daemon answers on /nonexistent/loopvol-cli-test.sock (ENOENT): is loopvol running? try: loopvol doctor',
      );
    },
  );

  it('names --socket in the hint when it was given', async () => {
    const result = await loopvol('rm', 'pg', '--socket', '/nonexistent/other.sock');
    expect(result.stderr).toContain('try: loopvol doctor --socket /nonexistent/other.sock');
  });
});

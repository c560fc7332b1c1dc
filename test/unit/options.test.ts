import { describe, expect, it } from 'vitest';
import {
  ACCEPTED_OPTIONS,
  MIN_SIZE_BYTES,
  parseVolumeSpec,
  type SpecDefaults,
} from '../../src/core/options.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const defaults: SpecDefaults = { sizeBytes: GiB, fs: 'ext4' };

/** The error message of a spec that must fail. */
function errorOf(opts: unknown, d: SpecDefaults = defaults): string {
  const result = parseVolumeSpec(opts, d);
  if (!('error' in result)) throw new Error(`expected an error for ${JSON.stringify(opts)}`);
  return result.error;
}

describe('parseVolumeSpec', () => {
  it.each([undefined, null, {}])('applies the defaults to Opts %j', (opts) => {
    expect(parseVolumeSpec(opts, defaults)).toMatchObject({
      sizeBytes: GiB,
      fs: 'ext4',
      sparse: true,
      uid: 0,
      gid: 0,
      mode: 0o755,
    });
  });

  it('takes the default size and filesystem from the daemon configuration', () => {
    expect(parseVolumeSpec({}, { sizeBytes: 2 * GiB, fs: 'xfs' })).toMatchObject({
      sizeBytes: 2 * GiB,
      fs: 'xfs',
    });
  });

  it('reads every accepted option', () => {
    expect(
      parseVolumeSpec(
        { size: '5', fs: 'xfs', sparse: 'false', uid: '1000', gid: '1001', mode: '2770' },
        defaults,
      ),
    ).toMatchObject({ sizeBytes: 5 * GiB, fs: 'xfs', sparse: false, uid: 1000, gid: 1001, mode: 0o2770 });
  });

  it('reads backup schedules and restore-other', () => {
    const allowed = {
      ...defaults,
      policy: { allowed: ['backup', 'backup-verify', 'restore-other'], denied: [] },
    };
    expect(
      parseVolumeSpec({ backup: '1h', 'backup-verify': '1d', 'restore-other': 'true' }, allowed),
    ).toMatchObject({ backupEverySeconds: 3600, verifyEverySeconds: 86400, restoreOther: true });
    expect(parseVolumeSpec({ 'restore-other': 'false' }, allowed)).toMatchObject({ restoreOther: false });
    expect(errorOf({ 'backup-verify': '50s' })).toBe(
      'option backup-verify: backup-verify must be at least 1m',
    );
    expect(errorOf({ 'backup-verify': 'daily' })).toMatch(/backup-verify takes a duration such as 500ms/);
  });

  it('takes allowlisted mount options, deduplicated, and none by default', () => {
    expect(parseVolumeSpec({}, defaults)).toMatchObject({ mountOptions: [] });
    expect(
      parseVolumeSpec({ mountopts: 'noatime, lazytime,data=journal,noatime,,ro' }, defaults),
    ).toMatchObject({ mountOptions: ['noatime', 'lazytime', 'data=journal', 'ro'] });
    expect(
      parseVolumeSpec({ fs: 'xfs', size: '1G', mountopts: 'discard,nodiratime' }, defaults),
    ).toMatchObject({
      mountOptions: ['discard', 'nodiratime'],
    });
  });

  it.each([
    [{ mountopts: 'exec' }, 'mount option "exec" is not allowed: mountopts accepts noatime'],
    [{ mountopts: 'suid,dev' }, '"suid", "dev" is not allowed'],
    [{ mountopts: 'data=writeback' }, '"data=writeback" is not allowed'],
    [{ mountopts: 'noatime,x-mount.mkdir=/etc' }, 'not allowed'],
    [{ fs: 'xfs', size: '1G', mountopts: 'data=journal' }, 'data=journal is for ext4 only'],
    [{ mountopts: 'a'.repeat(300) }, 'mountopts is too long'],
  ])('refuses mount options %j, listing the accepted ones', (opts, message) => {
    expect(errorOf(opts)).toContain(message);
  });

  it('names the unknown option and lists the accepted ones', () => {
    const error = errorOf({ size: '1G', tardis: 'blue' });
    expect(error).toContain('"tardis"');
    for (const option of ACCEPTED_OPTIONS) expect(error).toContain(option);
  });

  it('names every unknown option at once', () => {
    expect(errorOf({ foo: '1', bar: '2' })).toMatch(/"foo", "bar"/);
  });

  it.each(['ext4', 'xfs'] as const)('accepts fs=%s', (fs) => {
    expect(parseVolumeSpec({ fs, size: '1G' }, defaults)).toMatchObject({ fs });
  });

  it.each(['btrfs', 'EXT4', '', 'ext3'])('rejects fs=%j naming the choices', (fs) => {
    expect(errorOf({ fs })).toMatch(/fs must be ext4 or xfs/);
  });

  it.each([
    ['true', true],
    ['false', false],
  ])('reads sparse=%s', (sparse, expected) => {
    expect(parseVolumeSpec({ sparse }, defaults)).toMatchObject({ sparse: expected });
  });

  it.each(['yes', '1', 'TRUE', ''])('rejects sparse=%j', (sparse) => {
    expect(errorOf({ sparse })).toMatch(/sparse must be true or false/);
  });

  it('reads prealloc=zero as a written, not sparse, image', () => {
    expect(parseVolumeSpec({ prealloc: 'zero' }, defaults)).toMatchObject({
      sparse: false,
      prealloc: 'zero',
    });
    expect(parseVolumeSpec({ prealloc: 'zero', sparse: 'false' }, defaults)).toMatchObject({
      sparse: false,
      prealloc: 'zero',
    });
    expect(parseVolumeSpec({}, defaults)).not.toHaveProperty('prealloc');
  });

  it.each([
    [{ prealloc: 'yes' }, /prealloc must be zero/],
    [{ prealloc: 'zero', sparse: 'true' }, /drop sparse=true/],
    [{ prealloc: 'zero', fs: 'xfs' }, /for ext4 volumes/],
    [{ prealloc: 'zero', backend: 'disk' }, /for loop volumes/],
    [{ prealloc: 'zero', from: 'src' }, /clone is copied sparse/],
  ])('refuses %j', (opts, message) => {
    expect(errorOf(opts)).toMatch(message);
  });

  it.each(['uid', 'gid'])('accepts %s from 0 to 4294967294', (key) => {
    expect(parseVolumeSpec({ [key]: '0' }, defaults)).toMatchObject({ [key]: 0 });
    expect(parseVolumeSpec({ [key]: '4294967294' }, defaults)).toMatchObject({ [key]: 4294967294 });
  });

  it.each(['uid', 'gid'])('rejects %s outside 0..4294967294 or not an integer', (key) => {
    for (const value of ['4294967295', '9999999999', '-1', '1.5', 'root', '', '12345678901']) {
      expect(errorOf({ [key]: value })).toContain(`${key} must be a number from 0 to 4294967294`);
    }
  });

  it.each([
    ['755', 0o755],
    ['0755', 0o755],
    ['0700', 0o700],
    ['2770', 0o2770],
    ['01777', 0o1777],
  ])('reads mode %s as octal', (mode, expected) => {
    expect(parseVolumeSpec({ mode }, defaults)).toMatchObject({ mode: expected });
  });

  it.each(['888', '75', '0o755', 'rwx', '12345', '', '-755'])('rejects mode %j', (mode) => {
    expect(errorOf({ mode })).toMatch(/mode must be octal/);
  });

  it('refuses xfs below 300M and names the limit', () => {
    const error = errorOf({ fs: 'xfs', size: '299M' });
    expect(error).toContain('300M');
    expect(error).toContain('xfs');
    expect(parseVolumeSpec({ fs: 'xfs', size: '300M' }, defaults)).toMatchObject({ sizeBytes: 300 * MiB });
  });

  it('refuses a default size below the xfs minimum when only fs=xfs is asked for', () => {
    expect(errorOf({ fs: 'xfs' }, { sizeBytes: 64 * MiB, fs: 'ext4' })).toContain('300M');
  });

  it('refuses ext4 below its minimum and names the limit', () => {
    expect(MIN_SIZE_BYTES.ext4).toBe(16 * MiB);
    expect(errorOf({ size: '15M' })).toMatch(/minimum of 16M for ext4/);
    expect(parseVolumeSpec({ size: '16M' }, defaults)).toMatchObject({ sizeBytes: 16 * MiB });
  });

  it('passes the size parser message through', () => {
    expect(errorOf({ size: 'lots' })).toMatch(/"lots" is not a size/);
    expect(errorOf({ size: '20T' })).toMatch(/maximum of 16T/);
  });

  it.each([[[]], [['size=1G']], ['size=1G'], [5], [true]])('rejects non-object Opts %j', (opts) => {
    expect(errorOf(opts)).toBe('Opts must be an object of string options');
  });

  it.each([
    ['size', 5],
    ['uid', 1000],
    ['gid', 0],
    ['mode', 493],
    ['size', null],
    ['size', { value: '1G' }],
  ])('rejects a non-string value for %s (%j), naming the option', (key, value) => {
    const error = errorOf({ [key]: value });
    expect(error).toContain(`option ${key}`);
    expect(error).toMatch(/must be a string/);
  });

  it.each([
    ['fs', 4],
    ['sparse', true],
  ])('rejects a non-string %s (%j) with the choices', (key, value) => {
    expect(errorOf({ [key]: value })).toContain(`option ${key}`);
  });
});

describe('backup= intervals', () => {
  it.each([
    ['1m', 60],
    ['30m', 1800],
    ['6h', 21_600],
    ['1d', 86_400],
    ['90s', 90],
    ['3600', 3600],
  ])('reads backup=%s as %i seconds (units, or bare seconds)', (backup, seconds) => {
    expect(parseVolumeSpec({ backup }, defaults)).toMatchObject({ backupEverySeconds: seconds });
  });

  it.each(['10s', '59s', '59', '500ms'])('refuses backup=%s, below the floor of 1m', (backup) => {
    expect(errorOf({ backup })).toBe('option backup: backup must be at least 1m');
  });

  it('refuses an interval it cannot read, with the forms it takes', () => {
    expect(errorOf({ backup: 'hourly' })).toMatch(/^option backup: backup takes a duration such as/);
  });
});

describe('the operator option policy', () => {
  it('refuses restore-other unless the operator allows it, and reads it as a flag', () => {
    expect(parseVolumeSpec({}, defaults)).toMatchObject({ restoreOther: false });
    expect(errorOf({ from: 'backup', 'restore-other': 'true' })).toMatch(
      /^option restore-other is not allowed on this host \(privileged: only with --allow-options naming restore-other\)/,
    );
    const allowed = { ...defaults, policy: { allowed: ['from', 'restore-other'], denied: [] } };
    expect(parseVolumeSpec({ from: 'backup', 'restore-other': 'true' }, allowed)).toMatchObject({
      restoreOther: true,
      from: { backup: 'latest' },
    });
    expect(errorOf({ 'restore-other': 'yes' }, allowed)).toBe(
      'option restore-other: restore-other must be true or false',
    );
  });

  it('refuses denied options whatever their value, before reading it', () => {
    const d = { ...defaults, policy: { denied: ['backup', 'from'] } };
    expect(errorOf({ size: '1G', backup: '10s' }, d)).toBe(
      'option backup is not allowed on this host (--deny-options backup): ask the operator',
    );
    expect(errorOf({ from: 'backup:abcdef12' }, d)).toMatch(/--deny-options from/);
    expect(parseVolumeSpec({ size: '1G' }, d)).toMatchObject({ sizeBytes: GiB });
  });

  it('accepts only the allowed options, and still calls unknown keys unknown', () => {
    const d = { ...defaults, policy: { allowed: ['size'], denied: [] } };
    expect(parseVolumeSpec({ size: '2G' }, d)).toMatchObject({ sizeBytes: 2 * GiB });
    expect(errorOf({ size: '2G', fs: 'xfs' }, d)).toBe(
      'option fs is not allowed on this host (--allow-options size): ask the operator',
    );
    expect(errorOf({ colour: 'blue' }, d)).toMatch(/^unknown option "colour"/);
  });
});

describe("REX-Ray's option names (Marathon apps and dvdcli scripts moving from REX-Ray)", () => {
  it.each(['newfstype', 'newFsType', 'NEWFSTYPE'])('reads %s as fs, in any case', (key) => {
    expect(parseVolumeSpec({ [key]: 'xfs', size: '1G' }, defaults)).toMatchObject({ fs: 'xfs' });
  });

  it('takes newfstype beside an fs that agrees, and refuses one that does not', () => {
    expect(parseVolumeSpec({ fs: 'xfs', newfstype: 'xfs', size: '1G' }, defaults)).toMatchObject({
      fs: 'xfs',
    });
    expect(errorOf({ fs: 'ext4', newfstype: 'xfs' })).toBe(
      'options fs and newfstype both set fs, differently: give one',
    );
  });

  it('names newfstype, and the option it stands for, when its value is wrong', () => {
    expect(errorOf({ newfstype: 'ext3' })).toBe("option newfstype (loopvol's fs): fs must be ext4 or xfs");
  });

  it.each([
    ['volumetype', 'io1', 'loopvol has no volume types: remove it'],
    ['volumeType', 'gp2', 'loopvol has no volume types: remove it'],
    ['iops', '150', 'loopvol sets no IOPS limit: remove it'],
    ['IOPS', '0', 'loopvol sets no IOPS limit: remove it'],
    ['overwritefs', 'true', 'loopvol never formats over an existing filesystem: remove it'],
  ])('refuses %s=%s, whose meaning loopvol does not have, saying what to do', (key, value, message) => {
    const error = errorOf({ size: '5', [key]: value });
    expect(error).toMatch(new RegExp(`^option ${key} \\(REX-Ray's\\): `));
    expect(error).toContain(message);
  });

  it('accepts overwritefs=false, which asks for what loopvol always does', () => {
    expect(parseVolumeSpec({ size: '5', newfstype: 'ext4', overwritefs: 'false' }, defaults)).toMatchObject({
      sizeBytes: 5 * GiB,
      fs: 'ext4',
    });
  });

  it('polices newfstype as fs: denied or allowed with it, and says so by both names', () => {
    const denied = { ...defaults, policy: { denied: ['fs'] } };
    expect(errorOf({ newfstype: 'xfs' }, denied)).toBe(
      "option newfstype (loopvol's fs) is not allowed on this host (--deny-options fs): ask the operator",
    );
    const allowed = { ...defaults, policy: { allowed: ['size', 'fs'], denied: [] } };
    expect(parseVolumeSpec({ size: '1G', newfstype: 'xfs' }, allowed)).toMatchObject({ fs: 'xfs' });
  });
});

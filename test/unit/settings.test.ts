import { parseArgs } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SERVE_OPTIONS, SERVE_USAGE, settingsFromFlags } from '../../src/cli/serve-options.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { SETTING_KEYS, SETTINGS, type SettingKey } from '../../src/config/settings.js';

/** parseArgs as `loopvol serve` runs it, shaped as resolveConfig takes flags. */
const flagsOf = (argv: string[]) =>
  settingsFromFlags(parseArgs({ args: argv, options: SERVE_OPTIONS, strict: true }).values);

/** A setting's example on the command line: a switch is given alone. */
const argvOf = (k: SettingKey) => {
  const { flag, placeholder, example } = SETTINGS[k];
  return placeholder ? [`--${flag}`, example] : [`--${flag}`];
};

/**
 * Settings some others only show through (the cluster's timeout, the backup's keep) or need (the
 * repository and its password file go together, --encrypt-default needs a key file), with values no example uses.
 */
const CONTEXT = {
  cluster: 'zk://context:2181/ctx',
  backupRepo: '/srv/context-repo',
  backupPasswordFile: '/etc/context-password',
  keyFile: '/etc/context-key',
} satisfies Partial<Record<SettingKey, string>>;

const without = (k: SettingKey) => Object.fromEntries(Object.entries(CONTEXT).filter(([c]) => c !== k));

describe('the settings table', () => {
  it.each(SETTING_KEYS)('lists %s in the usage text with its env var', (k) => {
    const { flag, placeholder, env } = SETTINGS[k];
    expect(SERVE_USAGE).toMatch(new RegExp(`^  --${flag}${placeholder ? ` ${placeholder}` : ''} `, 'm'));
    expect(SERVE_USAGE).toContain(`env ${env}`);
  });

  it.each(SETTING_KEYS)('gives %s a parseArgs option of the right type', (k) => {
    const { flag, placeholder } = SETTINGS[k];
    expect(SERVE_OPTIONS[flag]).toEqual({ type: placeholder ? 'string' : 'boolean' });
  });

  it('has no other parseArgs options, and no flag or env var twice', () => {
    expect(Object.keys(SERVE_OPTIONS).sort()).toEqual(SETTING_KEYS.map((k) => SETTINGS[k].flag).sort());
    expect(new Set(SETTING_KEYS.map((k) => SETTINGS[k].env)).size).toBe(SETTING_KEYS.length);
  });

  it.each(SETTING_KEYS)('names the env var of %s after its flag, and its key after both', (k) => {
    const { flag, env } = SETTINGS[k];
    expect(env).toBe(`LOOPVOL_${flag.toUpperCase().replaceAll('-', '_')}`);
    expect(k).toBe(flag.replace(/-(.)/g, (_, c: string) => c.toUpperCase()));
  });

  it.each(SETTING_KEYS)('sets the same Config field from the flag of %s as from its env var', (k) => {
    const baseline = resolveConfig(CONTEXT, {});
    const byFlag = resolveConfig({ ...CONTEXT, ...flagsOf(argvOf(k)) }, {});
    const byEnv = resolveConfig(without(k), { [SETTINGS[k].env]: SETTINGS[k].example });
    expect(byEnv).toEqual(byFlag);
    // The example changes the Config: the setting reaches the daemon.
    expect(byFlag).not.toEqual(baseline);
  });

  it.each(SETTING_KEYS)('takes the flag of %s over its env var', (k) => {
    const byFlag = resolveConfig({ ...CONTEXT, ...flagsOf(argvOf(k)) }, {});
    const overEnv = resolveConfig(
      { ...CONTEXT, ...flagsOf(argvOf(k)) },
      { [SETTINGS[k].env]: SETTINGS[k].default },
    );
    expect(overEnv).toEqual(byFlag);
  });

  it('refuses a flag that is no setting, and a value after a switch', () => {
    expect(() => flagsOf(['--no-such-flag', 'x'])).toThrow(/Unknown option '--no-such-flag'/);
    expect(() => flagsOf(['--restore-missing=yes'])).toThrow(/does not take an argument/);
  });
});

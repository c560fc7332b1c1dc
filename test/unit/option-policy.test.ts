import { describe, expect, it } from 'vitest';
import { optionRefusal, PRIVILEGED_OPTIONS, parseOptionList } from '../../src/core/option-policy.js';
import { ACCEPTED_OPTIONS, OPTION_ALIASES } from '../../src/core/options.js';

describe('parseOptionList', () => {
  it('reads comma-separated keys, trimmed and without repeats', () => {
    expect(parseOptionList('--deny-options', ' backup, from,,backup', ACCEPTED_OPTIONS)).toEqual([
      'backup',
      'from',
    ]);
    expect(parseOptionList('--deny-options', '', ACCEPTED_OPTIONS)).toEqual([]);
  });

  it('reads "default" as every option but the privileged ones', () => {
    const keys = parseOptionList('--allow-options', 'default,restore-other', ACCEPTED_OPTIONS);
    expect(keys).toEqual([...ACCEPTED_OPTIONS.filter((k) => k !== 'restore-other'), 'restore-other']);
    expect(parseOptionList('--allow-options', 'default', ACCEPTED_OPTIONS)).not.toContain('restore-other');
  });

  it("reads an alias (REX-Ray's newfstype, in any case) as the option it stands for", () => {
    expect(parseOptionList('--deny-options', 'newFsType,size', ACCEPTED_OPTIONS, OPTION_ALIASES)).toEqual([
      'fs',
      'size',
    ]);
    expect(parseOptionList('--allow-options', 'fs,newfstype', ACCEPTED_OPTIONS, OPTION_ALIASES)).toEqual([
      'fs',
    ]);
  });

  it('refuses keys that are no option, naming them and the flag', () => {
    const result = parseOptionList('--allow-options', 'size,bakup,sizes', ACCEPTED_OPTIONS);
    expect(result).toEqual({
      error: expect.stringMatching(
        /^--allow-options names unknown option "bakup", "sizes": options are size, /,
      ),
    });
  });
});

describe('optionRefusal', () => {
  it('accepts every ordinary option and refuses the privileged ones when the operator says nothing', () => {
    for (const key of ACCEPTED_OPTIONS.filter((k) => !PRIVILEGED_OPTIONS.includes(k))) {
      expect(optionRefusal(undefined, key), key).toBeUndefined();
    }
    expect(PRIVILEGED_OPTIONS).toEqual(['restore-other']);
    expect(optionRefusal(undefined, 'restore-other')).toBe(
      'option restore-other is not allowed on this host (privileged: only with --allow-options naming restore-other): ask the operator',
    );
  });

  it('refuses a denied option, naming it and the flag', () => {
    const policy = { denied: ['backup'] };
    expect(optionRefusal(policy, 'backup')).toBe(
      'option backup is not allowed on this host (--deny-options backup): ask the operator',
    );
    expect(optionRefusal(policy, 'size')).toBeUndefined();
  });

  it('accepts only the allowed options, privileged ones included, less the denied ones', () => {
    const policy = { allowed: ['size', 'restore-other', 'from'], denied: ['from'] };
    expect(optionRefusal(policy, 'size')).toBeUndefined();
    expect(optionRefusal(policy, 'restore-other')).toBeUndefined();
    expect(optionRefusal(policy, 'from')).toMatch(/--deny-options from/);
    expect(optionRefusal(policy, 'fs')).toBe(
      'option fs is not allowed on this host (--allow-options size,restore-other,from): ask the operator',
    );
  });
});

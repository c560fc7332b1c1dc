/**
 * Which Create options this host accepts from its clients. Under Mesos, frameworks pass
 * `--volumeopts` through unchanged, so an option is a privilege any framework could use: the
 * operator narrows them with --allow-options / --deny-options.
 */
export interface OptionPolicy {
  /** --allow-options: only these keys are accepted; absent: every key but the privileged ones. */
  allowed?: readonly string[];
  /** --deny-options: refused, whatever --allow-options says. */
  denied: readonly string[];
}

/** Options refused unless the operator names them in --allow-options. */
export const PRIVILEGED_OPTIONS: readonly string[] = ['restore-other'];

/** In an option list, every option but the privileged ones: `--allow-options default,restore-other`. */
export const DEFAULT_OPTIONS_TOKEN = 'default';

/**
 * Reads a comma-separated list of option keys (--allow-options, --deny-options). A key that is no
 * option is an error naming it, so a typo cannot leave open what the operator meant to close. An
 * alias (another plugin's name for an option, in any case) stands for its option: the two are one
 * option, allowed or denied together.
 */
export function parseOptionList(
  flag: string,
  text: string,
  known: readonly string[],
  aliases: Readonly<Record<string, string>> = {},
): string[] | { error: string } {
  const keys = [
    ...new Set(
      text
        .split(',')
        .map((k) => k.trim())
        .filter(Boolean),
    ),
  ];
  const expanded = keys.flatMap((k) =>
    k === DEFAULT_OPTIONS_TOKEN
      ? known.filter((o) => !PRIVILEGED_OPTIONS.includes(o))
      : [aliases[k.toLowerCase()] ?? k],
  );
  const unknown = expanded.filter((k) => !known.includes(k));
  if (unknown.length === 0) return [...new Set(expanded)];
  return {
    error: `${flag} names unknown option ${unknown.map((k) => `"${k}"`).join(', ')}: options are ${known.join(', ')}`,
  };
}

/**
 * Why `key` is refused from a client, naming the flag that refuses it; undefined: accepted.
 * `asked`: the name the client used when it gave an alias of `key`, which is policed as `key`.
 */
export function optionRefusal(
  policy: OptionPolicy | undefined,
  key: string,
  asked: string = key,
): string | undefined {
  if (!policy) return optionRefusal({ denied: [] }, key, asked);
  const named = asked === key ? key : `${asked} (loopvol's ${key})`;
  const refused = (why: string) => `option ${named} is not allowed on this host (${why}): ask the operator`;
  if (policy.denied.includes(key)) return refused(`--deny-options ${key}`);
  if (policy.allowed && !policy.allowed.includes(key)) {
    return refused(`--allow-options ${policy.allowed.join(',')}`);
  }
  if (!policy.allowed && PRIVILEGED_OPTIONS.includes(key)) {
    return refused(`privileged: only with --allow-options naming ${key}`);
  }
  return undefined;
}

import type { ParseArgsConfig } from 'node:util';
import { SETTING_KEYS, SETTINGS, type Setting, type SettingKey } from '../config/settings.js';

/** `loopvol serve`'s flags, one per setting: a switch when the setting has no placeholder. */
export const SERVE_OPTIONS = Object.fromEntries(
  SETTING_KEYS.map((k) => [SETTINGS[k].flag, { type: SETTINGS[k].placeholder ? 'string' : 'boolean' }]),
) as NonNullable<ParseArgsConfig['options']>;

/** parseArgs' values as resolveConfig takes them: by setting, a switch given as "true". */
export function settingsFromFlags(
  values: Record<string, string | boolean | (string | boolean)[] | undefined>,
): Partial<Record<SettingKey, string>> {
  const given: Partial<Record<SettingKey, string>> = {};
  for (const k of SETTING_KEYS) {
    const value = values[SETTINGS[k].flag];
    if (typeof value === 'string') given[k] = value;
    else if (value === true) given[k] = 'true';
  }
  return given;
}

/** What the placeholders used in the help stand for. */
const PLACEHOLDER_NOTES: Record<string, string> = {
  SIZE: 'SIZE is 512M, 10G or 1.5T (binary units); a bare number is GiB.',
  TIME: 'TIME is 500ms, 2s, 1m, 1h, or a bare number of seconds.',
};

const WIDTH = 110;

const label = (s: Setting) => `--${s.flag}${s.placeholder ? ` ${s.placeholder}` : ''}`;

/**
 * Where the value comes from when the flag is absent, what it is when nothing gives one, an example,
 * what a bare number means, and the settings it needs.
 */
function origin(s: Setting): string[] {
  const required = (s.requires ?? []).map((k) => `--${SETTINGS[k as SettingKey].flag}`);
  const needs = required.length > 0 ? [`needs ${required.join(' and ')}`] : [];
  if (!s.placeholder) return [`env ${s.env}=${s.example}`, ...needs];
  const shown = s.defaultText ?? s.default;
  return [
    `env ${s.env}`,
    ...(shown === '' ? [] : [`default ${shown}`]),
    `e.g. ${s.example}`,
    ...(s.unit ? [`a bare number is ${s.unit}`] : []),
    ...needs,
  ];
}

/** Joins `parts` with `separator` into lines of at most `width` characters, breaking between parts. */
function wrap(parts: string[], separator: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const part of parts) {
    if (line && line.length + separator.length + part.length > width) {
      lines.push(line + separator.trimEnd());
      line = part;
    } else {
      line = line ? line + separator + part : part;
    }
  }
  return [...lines, line];
}

function usage(): string {
  const settings: Setting[] = SETTING_KEYS.map((k) => SETTINGS[k]);
  const column = Math.max(...settings.map((s) => label(s).length)) + 4;
  const options = settings.flatMap((s) =>
    [...wrap(s.help.split(' '), ' ', WIDTH - column), ...wrap(origin(s), ', ', WIDTH - column)].map(
      (line, i) => `${i === 0 ? `  ${label(s)}` : ''}`.padEnd(column) + line,
    ),
  );
  const notes = Object.entries(PLACEHOLDER_NOTES)
    .filter(([placeholder]) => settings.some((s) => s.placeholder === placeholder))
    .map(([, note]) => `  ${note}`);
  return [
    'usage: loopvol serve [OPTION]...',
    '',
    '  Runs the Docker volume plugin daemon until SIGTERM. Each option may instead be set by its',
    '  environment variable (env); a flag wins over it.',
    '',
    ...options,
    '',
    ...notes,
    '',
    'example:',
    '  loopvol serve --data-root /srv/loopvol --default-size 10G --log-format pretty',
  ].join('\n');
}

export const SERVE_USAGE = usage();

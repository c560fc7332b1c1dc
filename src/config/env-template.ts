import { SETTING_KEYS, SETTINGS } from './settings.js';

/**
 * The commented environment file scripts/install puts at /etc/loopvol/loopvol.env, written from
 * the settings table so it lists every setting the daemon has: each line commented out, showing
 * the default (what an unset variable means) and an example.
 */
export function envTemplate(): string {
  const entries = SETTING_KEYS.map((k) => {
    const s = SETTINGS[k];
    const shown = s.defaultText ?? s.default;
    return [
      `# --${s.flag}: ${s.help}.`,
      `#   default: ${shown === '' ? 'unset' : shown}; e.g. ${s.env}=${s.example}`,
      `#${s.env}=${s.default}`,
    ].join('\n');
  });
  return [
    '# loopvol daemon settings. systemd reads this file (EnvironmentFile=) before `loopvol serve`.',
    '# One VARIABLE=value a line, no quotes needed; a flag on ExecStart wins over it, and it wins',
    '# over the JSON file LOOPVOL_CONFIG names. Uncomment a line to change a setting, then:',
    '#   systemctl restart loopvol    (volumes in use stay mounted across the restart)',
    '# Keep this file mode 0600: restic credentials may go here.',
    '',
    ...entries.flatMap((e) => [e, '']),
    "# restic's own environment passes through to restic, for a repository's credentials, e.g.:",
    '#AWS_ACCESS_KEY_ID=',
    '#AWS_SECRET_ACCESS_KEY=',
    '#RESTIC_REST_USERNAME=',
    '#RESTIC_REST_PASSWORD=',
    '',
  ].join('\n');
}

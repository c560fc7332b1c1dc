import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from './resolve.js';
import { ENV, SETTING_KEYS, SETTINGS, type SettingKey } from './settings.js';

/** The settings a config file may hold: all but the one that names the file. */
const FILE_KEYS = SETTING_KEYS.filter((k) => k !== 'config');

/**
 * The file's schema: an object keyed by flag name, as daemon.json is for dockerd. A value is
 * validated by its setting's own schema, labelled with its key and the file so the operator
 * knows which line to fix; numbers and switches may be written bare (4, true).
 */
const fileSchema = (path: string) =>
  z.strictObject(
    Object.fromEntries(
      FILE_KEYS.map((k) => {
        const { flag, env, schema } = SETTINGS[k];
        const label = `"${flag}" in ${path}`;
        const check = schema(label, env);
        // The setting's schema checks the value; the file keeps the string, resolveConfig parses it.
        const value = z
          .union([z.string(), z.number(), z.boolean()], {
            error: `${label} must be a string, number or boolean`,
          })
          .transform((v, ctx) => {
            const parsed = check.safeParse(String(v));
            for (const issue of parsed.error?.issues ?? [])
              ctx.addIssue({ code: 'custom', message: issue.message });
            return String(v);
          });
        return [flag, value.optional()];
      }),
    ),
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `${path}: unknown setting ${issue.keys.map((k) => `"${k}"`).join(', ')} (keys are the flags' names)`
          : `${path} must hold a JSON object`,
    },
  );

/** Reads the JSON config file at `path` into settings, as resolveConfig takes them; throws naming the key. */
export async function readConfigFile(path: string): Promise<Partial<Record<SettingKey, string>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not JSON: ${(err as Error).message}`);
  }
  const result = fileSchema(path).safeParse(json);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => i.message).join('; '));
  const byFlag = result.data as Record<string, string | undefined>;
  return Object.fromEntries(
    FILE_KEYS.flatMap((k) => {
      const value = byFlag[SETTINGS[k].flag];
      return value === undefined ? [] : [[k, value]];
    }),
  );
}

/** The settings of the config file --config (else LOOPVOL_CONFIG) names; none when neither does. */
export function settingsFromConfigFile(
  flags: Partial<Record<SettingKey, string>>,
  env: NodeJS.ProcessEnv,
): Promise<Partial<Record<SettingKey, string>>> {
  const path = flags.config ?? env[ENV.config] ?? '';
  return path === '' ? Promise.resolve({}) : readConfigFile(path);
}

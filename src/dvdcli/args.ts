import { z } from 'zod';
import { driverName } from './discovery.js';

export const SUBCOMMANDS = [
  'mount',
  'unmount',
  'create',
  'remove',
  'path',
  'get',
  'list',
  'version',
] as const;
export type Subcommand = (typeof SUBCOMMANDS)[number];

/** A parsed dvdcli command line. */
export interface DvdcliArgs {
  command: Subcommand;
  driver: string;
  /** Empty for `list`. */
  volume: string;
  opts: Record<string, string>;
  explicitCreate: boolean;
  /** `get` and `list` print the plugin's JSON instead of names. */
  json: boolean;
}

export const DVDCLI_USAGE = `usage: dvdcli <mount|unmount|create|remove|path|get|list> --volumedriver=NAME [--volumename=NAME]
              [--volumeopts=k=v[,k=v...]]... [--explicitcreate[=true|false]] [--json]
       dvdcli version

Speaks the Docker volume plugin protocol to any plugin found by Docker's discovery rules, and prints
what rexray's dvdcli 0.2 prints: mount and path the mountpoint, get the volume's name, list one name a
line (--json: the plugin's answer as JSON), create, remove and unmount nothing. Logs go to stderr; exit 1
on any error. Environment: DVDCLI_TIMEOUT (seconds per call; default 120 for mount/create, 60 otherwise).`;

export const VALUE_FLAGS = new Set(['volumedriver', 'volumename', 'volumeopts']);
/** Flags without a value; `=true|false` may follow. */
export const BOOLEAN_FLAGS = new Set(['explicitcreate', 'json']);

const schema = z.object({
  command: z.enum(SUBCOMMANDS, { error: `the command must be one of ${SUBCOMMANDS.join(', ')}` }),
  driver: driverName,
  volume: z.string(),
  explicitCreate: z.enum(['true', 'false'], { error: '--explicitcreate takes true or false' }),
  json: z.enum(['true', 'false'], { error: '--json takes true or false' }),
});

/**
 * Parses dvdcli's flags as its flag library does: `--flag=value` or `--flag value`, booleans
 * (`--explicitcreate`, `--json`) with an optional `=true|false`, and `--volumeopts` repeatable with
 * each value split on commas into key=value pairs (the Mesos isolator passes one flag per option).
 * Flag names are matched in any case: mesos-module-dvdi writes `--explicitCreate=true`, which the
 * Go dvdcli rejects.
 */
export function parseDvdcliArgs(argv: readonly string[]): DvdcliArgs {
  const [command, ...rest] = argv;
  const values: Record<string, string[]> = { volumedriver: [], volumename: [], volumeopts: [] };
  const booleans: Record<string, string> = { explicitcreate: 'false', json: 'false' };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    const match = /^--?([A-Za-z]+)(?:=(.*))?$/s.exec(arg);
    if (!match?.[1]) throw new Error(`unexpected argument "${arg}"`);
    const flag = match[1].toLowerCase();
    const inline = match[2];
    if (BOOLEAN_FLAGS.has(flag)) {
      booleans[flag] = inline ?? 'true';
      continue;
    }
    if (!VALUE_FLAGS.has(flag)) throw new Error(`unknown flag --${flag}`);
    const value = inline ?? rest[++i];
    if (value === undefined) throw new Error(`--${flag} needs a value`);
    values[flag]?.push(value);
  }
  const last = (flag: string) => values[flag]?.at(-1) ?? '';
  if (command === 'version') {
    return { command, driver: '', volume: '', opts: {}, explicitCreate: false, json: false };
  }
  const parsed = schema.safeParse({
    command,
    driver: last('volumedriver'),
    volume: last('volumename'),
    explicitCreate: booleans.explicitcreate,
    json: booleans.json,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path[0] === 'driver' ? '--volumedriver: ' : '';
    throw new Error(`${field}${issue?.message ?? 'invalid arguments'}`);
  }
  if (parsed.data.command !== 'list' && parsed.data.volume === '')
    throw new Error('--volumename is required');
  const opts: Record<string, string> = {};
  for (const pair of values.volumeopts?.flatMap((v) => v.split(',')) ?? []) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--volumeopts "${pair}" is not key=value`);
    opts[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return {
    command: parsed.data.command,
    driver: parsed.data.driver,
    volume: parsed.data.volume,
    opts,
    explicitCreate: parsed.data.explicitCreate === 'true',
    json: parsed.data.json === 'true',
  };
}

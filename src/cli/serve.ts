import { parseArgs } from 'node:util';
import { settingsFromConfigFile } from '../config/file.js';
import { resolveConfig } from '../config/resolve.js';
import { serve } from '../daemon.js';
import { SERVE_OPTIONS, settingsFromFlags } from './serve-options.js';

export { SERVE_USAGE } from './serve-options.js';

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: SERVE_OPTIONS, strict: true, allowPositionals: false });
  const flags = settingsFromFlags(values);
  await serve(resolveConfig(flags, process.env, await settingsFromConfigFile(flags, process.env)));
}

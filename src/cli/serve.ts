import { parseArgs } from 'node:util';
import { resolveConfig } from '../config/resolve.js';
import { serve } from '../daemon.js';
import { SERVE_OPTIONS, settingsFromFlags } from './serve-options.js';

export { SERVE_USAGE } from './serve-options.js';

export async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: SERVE_OPTIONS, strict: true, allowPositionals: false });
  await serve(resolveConfig(settingsFromFlags(values), process.env));
}

import { settingsFromConfigFile } from '../config/file.js';
import { ConfigError, resolveConfig } from '../config/resolve.js';
import { serve } from '../daemon.js';
import { noMore, parseCommandLine, UsageError } from './args.js';
import { SERVE_OPTIONS, settingsFromFlags } from './serve-options.js';

export { SERVE_OPTIONS, SERVE_USAGE } from './serve-options.js';

export async function serveCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, SERVE_OPTIONS);
  noMore(positionals, 0);
  const flags = settingsFromFlags(values);
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = resolveConfig(flags, process.env, await settingsFromConfigFile(flags, process.env));
  } catch (err) {
    // Settings that cannot work are a wrong command line (or environment): exit 2, before any work.
    throw err instanceof ConfigError ? new UsageError(err.message) : err;
  }
  await serve(config);
}

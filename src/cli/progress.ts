import type { Ora } from 'ora';

/**
 * Shows what is running and for how long on stderr while `work` runs (a check, a resize, a large
 * preallocated create: the daemon answers only when done), when stderr is a terminal. Scripts and
 * --json output never see it.
 */
export async function withProgress<T>(text: string, work: () => Promise<T>): Promise<T> {
  if (!process.stderr.isTTY) return work();
  const { default: ora } = await import('ora');
  const started = Date.now();
  const spinner: Ora = ora({ text, stream: process.stderr }).start();
  const timer = setInterval(() => {
    spinner.text = `${text} (${Math.round((Date.now() - started) / 1000)}s)`;
  }, 1000);
  try {
    const result = await work();
    spinner.succeed(`${text}: done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    return result;
  } catch (err) {
    spinner.fail(text);
    throw err;
  } finally {
    clearInterval(timer);
  }
}

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import type { PluginProcess, pluginCases } from './plugin.js';
import { initRepository } from './restic-repo.js';

/** A restic repository the operator made (restic init) in `dir`. */
export async function makeRepository(dir: string): Promise<{ repo: string; password: string }> {
  const repo = join(dir, 'repo');
  const password = join(dir, 'password');
  await writeFile(password, 'correct horse\n', { mode: 0o600 });
  await initRepository(repo, password);
  return { repo, password };
}

/** The arguments of a daemon that backs up to `repo`. */
export const backupArgs = ({ repo, password }: { repo: string; password: string }) => [
  '--spares',
  '0',
  '--backup-repo',
  repo,
  '--backup-password-file',
  password,
];

/** Starts a daemon of `cases` (begun) backing up to a new repository in `dir`. */
export async function startWithRepository(
  cases: ReturnType<typeof pluginCases>,
  dir: string,
  env: Record<string, string> = {},
): Promise<{ repo: string; password: string; args: string[]; p: PluginProcess }> {
  const made = await makeRepository(dir);
  const args = backupArgs(made);
  return { ...made, args, p: await cases.start({ args, env }) };
}

/** The fields of every log line of `p` whose msg is `msg`. */
export function logLines(p: PluginProcess, msg: string): Record<string, unknown>[] {
  return p
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

/** Backs `image` up as loopvol did before file backups: one file, /<volume>.img, tagged `tags`. */
export async function backUpImage(
  { repo, password }: { repo: string; password: string },
  image: string,
  volume: string,
  tags: string[],
): Promise<void> {
  const command = ['--repo', repo, '--password-file', password, 'backup', '--stdin'];
  await execa('restic', [...command, '--stdin-filename', `/${volume}.img`, '--tag', tags.join(',')], {
    inputFile: image,
  });
}

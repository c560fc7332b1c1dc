import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/** loopvol's ZooKeeper identity (--cluster-auth-file): a digest user and its password. */
export interface ClusterAuth {
  user: string;
  password: string;
}

/** The file's most: one `user:password` line. */
const MAX_AUTH_FILE_BYTES = 1024;
const LINE = /^([A-Za-z0-9_.-]{1,64}):([^\s]{8,256})$/;

/**
 * Reads `user:password` from `file`, refusing a file other users can read (the secret is what
 * keeps them from moving volumes) and anything but one such line.
 */
export async function readClusterAuth(file: string): Promise<ClusterAuth> {
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`cannot read --cluster-auth-file ${file}: ${err.code ?? err.message}`);
  });
  if (!info.isFile()) throw new Error(`--cluster-auth-file ${file} is not a regular file`);
  if ((info.mode & 0o077) !== 0) {
    throw new Error(
      `--cluster-auth-file ${file} is readable by other users (mode ${(info.mode & 0o777).toString(8)}): chmod 600 it`,
    );
  }
  if (info.size > MAX_AUTH_FILE_BYTES)
    throw new Error(`--cluster-auth-file ${file} is too large for one line`);
  const match = LINE.exec((await readFile(file, 'utf8')).trim());
  if (!match) {
    throw new Error(
      `--cluster-auth-file ${file} must hold one line USER:PASSWORD (user: letters, digits, "_", "." or "-"; password: 8 to 256 characters without spaces)`,
    );
  }
  return { user: match[1] as string, password: match[2] as string };
}

/** The identity ZooKeeper's digest scheme stores in ACLs: user:base64(sha1(user:password)). */
export function digestId({ user, password }: ClusterAuth): string {
  return `${user}:${createHash('sha1').update(`${user}:${password}`).digest('base64')}`;
}

import { isAbsolute, relative, sep } from 'node:path';

/**
 * Whether `path` is `dir` or lies under it: both absolute, compared lexically (no symlink is
 * followed). An empty `dir` (an option left unset) contains nothing.
 */
export function isWithin(path: string, dir: string): boolean {
  if (dir === '') return false;
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

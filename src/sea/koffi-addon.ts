import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { constants, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
// Only the single executable loads this module (its Node has node:sea, with assets since 20.12).
import { getAsset } from 'node:sea';

/** The asset name scripts/build-sea.mjs gives koffi's native addon. */
export const ADDON_ASSET = 'koffi.node';

let addon: unknown;

/**
 * koffi's native addon, from the copy embedded in the single executable. The kernel loads a shared
 * object only from a file, so the addon is written once to a private directory under a name that
 * is its content's hash (later starts, and other versions side by side, reuse or add files) and
 * loaded from there. The directories tried, in order: `LOOPVOL_ADDON_DIR` when set (and then only
 * it; its parent must exist), `$TMPDIR/loopvol-<uid>`, then `/var/cache/loopvol` (root) or
 * `~/.cache/loopvol` (where /tmp is mounted noexec, the kernel refuses to map the addon from it).
 * A directory is used only if it is a real directory owned by this user that no one else can
 * write to. Throws, naming every directory and why, when none works: loopvol then uses the tools.
 */
export function loadEmbeddedAddon(): unknown {
  if (addon !== undefined) return addon;
  const bytes = new Uint8Array(getAsset(ADDON_ASSET));
  const name = `koffi-${createHash('sha256').update(bytes).digest('hex').slice(0, 32)}.node`;
  const failures: string[] = [];
  for (const dirs of candidateDirs()) {
    const dir = dirs.at(-1) as string;
    try {
      // Not mkdir's recursive option: under /proc, Node 20's never returns.
      for (const d of dirs) makeDir(d, 0o700);
      const file = join(dir, name);
      materialise(dir, file, bytes);
      const module = { exports: {} as unknown };
      process.dlopen(module, file, constants.dlopen.RTLD_NOW);
      addon = module.exports;
      return addon;
    } catch (err) {
      failures.push(`${dir}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot load the embedded ${ADDON_ASSET}: ${failures.join('; ')}`);
}

/** Each candidate: the directories to make, outermost first; the addon goes in the last. */
function candidateDirs(): string[][] {
  const chosen = process.env.LOOPVOL_ADDON_DIR;
  if (chosen) return [[chosen]];
  const uid = process.getuid?.() ?? 0;
  const cache = join(homedir(), '.cache');
  return [
    [join(tmpdir(), `loopvol-${uid}`)],
    uid === 0 ? ['/var/cache/loopvol'] : [cache, join(cache, 'loopvol')],
  ];
}

/** Makes `file` hold exactly `bytes`, in `dir`, which only this user can write to. */
function materialise(dir: string, file: string, bytes: Uint8Array): void {
  assertPrivate(dir, 'directory');
  try {
    assertPrivate(file, 'file');
    if (readFileSync(file).equals(bytes)) return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // Another start may be writing the same name: each writes its own file and renames it in place.
  const partial = `${file}.${process.pid}.partial`;
  rmSync(partial, { force: true }); // left by a process that had this pid and was killed
  try {
    writeFileSync(partial, bytes, { mode: 0o500, flag: 'wx' });
    renameSync(partial, file);
  } finally {
    rmSync(partial, { force: true });
  }
}

function makeDir(dir: string, mode: number): void {
  try {
    mkdirSync(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}

function assertPrivate(path: string, kind: 'directory' | 'file'): void {
  const st = lstatSync(path);
  const isKind = kind === 'directory' ? st.isDirectory() : st.isFile();
  if (!isKind) throw new Error(`${path} is not a ${kind}`);
  if (st.uid !== (process.getuid?.() ?? 0)) throw new Error(`${path} belongs to uid ${st.uid}`);
  if ((st.mode & 0o022) !== 0)
    throw new Error(`${path} is writable by others (mode ${(st.mode & 0o777).toString(8)})`);
}

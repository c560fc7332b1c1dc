import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The SEA asset holding koffi's native addon (see scripts/build-sea.mjs). */
export const KOFFI_ASSET = 'koffi.node';

/**
 * A native addon cannot be loaded from inside the executable: it is written once to a private
 * directory (root's /run, else the temp dir), named by its hash so that every start reuses it, and
 * loaded from there. The directory must be ours, 0700 and not a link; the file is checked against
 * the embedded bytes on every start, so nothing planted there is ever loaded.
 */
export function loadEmbeddedAddon(bytes: Buffer): unknown {
  const hash = createHash('sha256').update(bytes).digest('hex');
  const uid = process.getuid?.() ?? 0;
  const dir = join(uid === 0 ? '/run' : tmpdir(), `loopvol-native-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = lstatSync(dir);
  if (!info.isDirectory() || info.uid !== uid || (info.mode & 0o077) !== 0) {
    throw new Error(`${dir} is not a private directory of this user: remove it and start again`);
  }
  const file = join(dir, `koffi-${hash.slice(0, 16)}.node`);
  const current = (() => {
    try {
      return createHash('sha256').update(readFileSync(file)).digest('hex') === hash;
    } catch {
      return false;
    }
  })();
  if (!current) {
    const temp = `${file}.${process.pid}.tmp`;
    const fd = openSync(temp, 'wx', 0o500);
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  }
  return createRequire(file)(file);
}

import { hkdfSync, randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { VolumeError } from '../core/errors.js';
import type { VolumeEncryption } from '../state/record.js';

/** What --key-file may hold: 32 to 64 bytes of key (a 64-byte random file is best). */
export const MASTER_KEY_MIN_BYTES = 32;
export const MASTER_KEY_MAX_BYTES = 64;
/** fscrypt v2 keys are 64 bytes (AES-256-XTS takes all of them). */
const VOLUME_KEY_BYTES = 64;
const VOLUME_KEY_INFO = 'loopvol fscrypt v1';
/** The kernel's key identifier: HKDF-SHA512 of the key, no salt, info "fscrypt\0" and context 1. */
const IDENTIFIER_INFO = Buffer.concat([Buffer.from('fscrypt\0', 'latin1'), Buffer.from([1])]);

/**
 * Why a master key file cannot be used, or undefined: it must be a regular file owned by root,
 * readable by root alone (0600 or 0400), of 32 to 64 bytes.
 */
export function keyFileProblem(info: {
  isFile(): boolean;
  uid: number;
  mode: number;
  size: number;
}): string | undefined {
  if (!info.isFile()) return 'is not a regular file';
  if (info.uid !== 0) return `is owned by uid ${info.uid}, not root: chown root:root it`;
  if ((info.mode & 0o177) !== 0) {
    return `has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}: others could read the key; chmod 0600 it`;
  }
  if (info.size < MASTER_KEY_MIN_BYTES || info.size > MASTER_KEY_MAX_BYTES) {
    return `holds ${info.size} bytes, not ${MASTER_KEY_MIN_BYTES} to ${MASTER_KEY_MAX_BYTES}: make one with "head -c 64 /dev/urandom > FILE"`;
  }
  return undefined;
}

/** Reads --key-file, refusing one others could read (see keyFileProblem). */
export async function loadMasterKey(path: string): Promise<Buffer> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`--key-file ${path} cannot be read (${err.code}): give the path of the master key file`);
  });
  const problem = keyFileProblem(info);
  if (problem) throw new Error(`--key-file ${path} ${problem}`);
  const key = await readFile(path);
  const again = keyFileProblem({ isFile: () => true, uid: info.uid, mode: info.mode, size: key.length });
  if (again) throw new Error(`--key-file ${path} ${again}`);
  return key;
}

/** A volume's fscrypt key: HKDF-SHA256 of the master key, salted with the volume's key UUID. */
export function deriveVolumeKey(master: Buffer, keyUuid: string): Buffer {
  return Buffer.from(
    hkdfSync('sha256', master, Buffer.from(keyUuid, 'utf8'), VOLUME_KEY_INFO, VOLUME_KEY_BYTES),
  );
}

/** The identifier the kernel gives `key` (FS_IOC_ADD_ENCRYPTION_KEY answers the same), as hex. */
export function keyIdentifier(key: Buffer): string {
  return Buffer.from(hkdfSync('sha512', key, Buffer.alloc(0), IDENTIFIER_INFO, 16)).toString('hex');
}

/**
 * The operator's master key (--key-file) and what it gives each encrypted volume. Only the key
 * UUID and the key's identifier are ever stored; the key is derived again at each Mount.
 */
export class VolumeKeys {
  constructor(private readonly master: Buffer | undefined) {}

  get configured(): boolean {
    return this.master !== undefined;
  }

  /** A new encrypted volume's key record, or why there can be none. */
  forNew(name: string): VolumeEncryption {
    if (!this.master) {
      throw new VolumeError(
        `cannot create volume ${name} encrypted: this daemon has no master key: start it with --key-file (see docs/security.md)`,
        'invalid',
      );
    }
    const keyUuid = randomUUID();
    const key = deriveVolumeKey(this.master, keyUuid);
    const keyId = keyIdentifier(key);
    key.fill(0);
    return { keyUuid, keyId };
  }

  /**
   * The key of an encrypted volume, checked against the identifier stored at its Create: a wrong
   * master key is refused here, before the kernel sees it.
   */
  keyOf(name: string, encryption: VolumeEncryption): Buffer {
    if (!this.master) {
      throw new VolumeError(
        `volume ${name} is encrypted and this daemon has no master key: start it with the --key-file the volume was created with`,
        'invalid',
      );
    }
    const key = deriveVolumeKey(this.master, encryption.keyUuid);
    const given = keyIdentifier(key);
    if (given !== encryption.keyId) {
      key.fill(0);
      throw new VolumeError(
        `volume ${name} is encrypted with another master key (key ${encryption.keyId}, this daemon's --key-file gives ${given}): start the daemon with the key file the volume was created with`,
        'invalid',
      );
    }
    return key;
  }
}

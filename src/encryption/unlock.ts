import { chmod, chown, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { VolumeError } from '../core/errors.js';
import type { VolumeEncryption } from '../state/record.js';
import { addKey, type KeyStatus, keyStatus, policyKey, removeKey, setPolicy } from '../system/fscrypt.js';
import type { VolumeKeys } from './keys.js';

/**
 * The directory an encrypted volume serves, inside its filesystem: the root of a filesystem cannot
 * carry an encryption policy, so the volume's data lives one level down.
 */
export const ENCRYPTED_DIR = 'data';

/** Where a volume's data is served from: its mountpoint, or the encrypted directory in it. */
export const servedPath = (mountPoint: string, encryption: VolumeEncryption | undefined): string =>
  encryption ? join(mountPoint, ENCRYPTED_DIR) : mountPoint;

const id = (encryption: VolumeEncryption) => Buffer.from(encryption.keyId, 'hex');

/** Adds the volume's key to its mounted filesystem, refusing a key the kernel names otherwise. */
async function addChecked(name: string, mountPoint: string, key: Buffer, encryption: VolumeEncryption) {
  const added = await addKey(mountPoint, key).finally(() => key.fill(0));
  if (added.toString('hex') !== encryption.keyId) {
    await removeKey(mountPoint, added).catch(() => undefined);
    throw new VolumeError(
      `cannot unlock volume ${name}: the kernel names its key ${added.toString('hex')}, not ${encryption.keyId}`,
    );
  }
}

/**
 * Readies a new encrypted filesystem, mounted at `mountPoint`: the encrypted directory made with
 * the owner and mode the volume asks for, under a v2 policy naming the volume's key. The key is
 * removed again afterwards.
 */
export async function prepareEncrypted(
  name: string,
  mountPoint: string,
  encryption: VolumeEncryption,
  keys: VolumeKeys,
  owner: { uid: number; gid: number; mode: number },
): Promise<void> {
  await addChecked(name, mountPoint, keys.keyOf(name, encryption), encryption);
  try {
    const dir = join(mountPoint, ENCRYPTED_DIR);
    await mkdir(dir, { mode: 0o700 });
    await setPolicy(dir, id(encryption));
    await chown(dir, owner.uid, owner.gid);
    await chmod(dir, owner.mode);
  } finally {
    await removeKey(mountPoint, id(encryption));
  }
}

/**
 * Makes a mounted encrypted volume readable: checks the key against the identifier stored at its
 * Create and the one its directory's policy names, then adds it to the filesystem's keyring. Any
 * mismatch is refused, so a wrong key never serves a volume that looks empty or garbled.
 */
export async function unlock(
  name: string,
  mountPoint: string,
  encryption: VolumeEncryption,
  keys: VolumeKeys,
): Promise<void> {
  const key = keys.keyOf(name, encryption);
  const dir = join(mountPoint, ENCRYPTED_DIR);
  let policy: Buffer | undefined;
  try {
    policy = await policyKey(dir);
  } catch (err) {
    key.fill(0);
    throw new VolumeError(
      `cannot unlock volume ${name}: its encrypted directory cannot be read (${(err as Error).message}): the image is not as loopvol made it; restore it from a snapshot or backup`,
    );
  }
  if (policy?.toString('hex') !== encryption.keyId) {
    key.fill(0);
    throw new VolumeError(
      policy
        ? `cannot unlock volume ${name}: its encrypted directory names key ${policy.toString('hex')}, not ${encryption.keyId} as its record says`
        : `cannot unlock volume ${name}: its directory ${ENCRYPTED_DIR} is not encrypted: the image is not as loopvol made it`,
    );
  }
  await addChecked(name, mountPoint, key, encryption);
}

/**
 * Removes the volume's key from its filesystem before the last unmount, so its plain text leaves
 * the kernel even where a container's copy of the mount keeps the filesystem alive. A key already
 * gone is fine.
 */
export async function lock(
  mountPoint: string,
  encryption: VolumeEncryption,
): Promise<{ filesBusy: boolean }> {
  try {
    return await removeKey(mountPoint, id(encryption));
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOKEY') return { filesBusy: false };
    throw err;
  }
}

/** Whether the filesystem mounted at `mountPoint` holds the volume's key (tests and doctor). */
export function unlocked(mountPoint: string, encryption: VolumeEncryption): Promise<KeyStatus> {
  return keyStatus(mountPoint, id(encryption));
}

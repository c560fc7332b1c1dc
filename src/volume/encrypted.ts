import type { Backend } from '../backend/backend.js';
import { VolumeError } from '../core/errors.js';
import type { VolumeSpec } from '../core/options.js';
import type { VolumeKeys } from '../encryption/keys.js';
import { prepareEncrypted } from '../encryption/unlock.js';
import type { VolumePaths } from '../state/layout.js';
import type { VolumeEncryption } from '../state/record.js';
import { ext4CanEncrypt } from '../system/fscrypt.js';
import type { Maintained } from './port.js';

/**
 * A new volume's encryption: a clone's is its source's (the copy is encrypted with the source's
 * key, so it keeps its key UUID); a new encrypted volume gets a key of its own. Undefined: plain,
 * or a restore, which learns it from the backup.
 */
export function encryptionFor(
  name: string,
  spec: VolumeSpec,
  source: Maintained | undefined,
  keys: VolumeKeys,
): VolumeEncryption | undefined {
  const encryption = spec.from ? source?.record.encryption : spec.encrypt ? keys.forNew(name) : undefined;
  if (!encryption) return undefined;
  if (!ext4CanEncrypt()) {
    throw new VolumeError(
      `cannot create volume ${name} encrypted: this kernel's ext4 has no encryption (/sys/fs/ext4/features/encryption is missing: CONFIG_FS_ENCRYPTION)`,
      'invalid',
    );
  }
  spec.encrypt = true;
  return encryption;
}

/**
 * Readies a new encrypted volume's filesystem while it is staged: mounted for the moment, its root
 * emptied (root's, 0755), its encrypted directory made (see prepareEncrypted), unmounted again.
 */
export async function prepareNewEncrypted(
  name: string,
  backend: Backend,
  staged: VolumePaths,
  spec: VolumeSpec,
  encryption: VolumeEncryption,
  keys: VolumeKeys,
): Promise<void> {
  // Mounted writable even for a read-only volume: the directory is made now.
  const mountOptions = spec.mountOptions.filter((o) => o !== 'ro');
  const volume = { spec: { ...spec, uid: 0, gid: 0, mode: 0o755, mountOptions } };
  await backend.activate(staged, volume, true);
  try {
    await prepareEncrypted(name, staged.mountPoint, encryption, keys, spec);
  } finally {
    await backend.deactivate(staged, volume);
  }
}

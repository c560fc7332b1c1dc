import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encryptionOfTags, encryptionTags } from '../../src/backup/image-backup.js';
import { parseVolumeSpec, type SpecDefaults } from '../../src/core/options.js';
import { deriveVolumeKey, keyFileProblem, keyIdentifier, VolumeKeys } from '../../src/encryption/keys.js';

const defaults: SpecDefaults = { sizeBytes: 1024 ** 3, fs: 'ext4' };
const master = Buffer.alloc(64, 7);

/** RFC 5869 by hand (HMAC only), so the derivation is checked against the definition, not itself. */
function hkdf(hash: string, ikm: Buffer, salt: Buffer, info: Buffer, length: number): Buffer {
  const prk = createHmac(hash, salt.length > 0 ? salt : Buffer.alloc(hash === 'sha512' ? 64 : 32))
    .update(ikm)
    .digest();
  let block = Buffer.alloc(0);
  const out: Buffer[] = [];
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    block = createHmac(hash, prk)
      .update(Buffer.concat([block, info, Buffer.from([i])]))
      .digest();
    out.push(block);
  }
  return Buffer.concat(out).subarray(0, length);
}

describe('volume keys', () => {
  it('derives 64 bytes with HKDF-SHA256 (salt: the key UUID, info: "loopvol fscrypt v1")', () => {
    const uuid = '2f1b6c1e-51c8-4f53-9d55-6a0b2f0c7a11';
    const key = deriveVolumeKey(master, uuid);
    expect(key).toHaveLength(64);
    expect(key).toEqual(hkdf('sha256', master, Buffer.from(uuid), Buffer.from('loopvol fscrypt v1'), 64));
    expect(deriveVolumeKey(master, 'another')).not.toEqual(key);
    expect(deriveVolumeKey(Buffer.alloc(64, 8), uuid)).not.toEqual(key);
  });

  it('names a key as the kernel does: HKDF-SHA512, no salt, info "fscrypt\\0" and context 1', () => {
    const key = Buffer.alloc(64, 1);
    const info = Buffer.concat([Buffer.from('fscrypt\0', 'latin1'), Buffer.from([1])]);
    expect(keyIdentifier(key)).toBe(hkdf('sha512', key, Buffer.alloc(0), info, 16).toString('hex'));
  });

  it('gives a new volume a key UUID and identifier, and refuses another master key or none', () => {
    const encryption = new VolumeKeys(master).forNew('v');
    expect(encryption.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(new VolumeKeys(master).keyOf('v', encryption)).toEqual(
      deriveVolumeKey(master, encryption.keyUuid),
    );
    expect(() => new VolumeKeys(Buffer.alloc(64, 9)).keyOf('v', encryption)).toThrow(
      /volume v is encrypted with another master key/,
    );
    expect(() => new VolumeKeys(undefined).keyOf('v', encryption)).toThrow(/has no master key/);
    expect(() => new VolumeKeys(undefined).forNew('v')).toThrow(/start it with --key-file/);
  });

  it('refuses key files others can read, not root-owned, or of the wrong size', () => {
    const file = (mode: number, uid = 0, size = 64) => ({
      isFile: () => true,
      mode: 0o100000 | mode,
      uid,
      size,
    });
    expect(keyFileProblem(file(0o600))).toBeUndefined();
    expect(keyFileProblem(file(0o400))).toBeUndefined();
    expect(keyFileProblem(file(0o640))).toMatch(/mode 0640: others could read the key; chmod 0600 it/);
    expect(keyFileProblem(file(0o600, 1000))).toMatch(/owned by uid 1000, not root/);
    expect(keyFileProblem(file(0o600, 0, 16))).toMatch(/16 bytes, not 32 to 64/);
    expect(keyFileProblem({ ...file(0o600), isFile: () => false })).toMatch(/not a regular file/);
  });
});

describe("an encrypted volume's backup tags", () => {
  it('carry the key UUID and identifier, read back; a plain backup has none', () => {
    const encryption = new VolumeKeys(master).forNew('v');
    const tags = ['loopvol', 'volume=v', ...encryptionTags(encryption), 'gen=0'];
    expect(encryptionOfTags(tags)).toEqual(encryption);
    expect(encryptionOfTags(['loopvol', 'volume=v', 'format=files'])).toBeUndefined();
    expect(encryptionOfTags(['key=not-a-uuid', `keyid=${encryption.keyId}`])).toBeUndefined();
  });
});

describe('the encrypt option', () => {
  it('encrypts when asked or by default, and never an xfs or disk volume', () => {
    expect(parseVolumeSpec({}, defaults)).toMatchObject({ encrypt: false });
    expect(parseVolumeSpec({ encrypt: 'true' }, defaults)).toMatchObject({ encrypt: true });
    expect(parseVolumeSpec({}, { ...defaults, encrypt: true })).toMatchObject({ encrypt: true });
    expect(parseVolumeSpec({ encrypt: 'false' }, { ...defaults, encrypt: true })).toMatchObject({
      encrypt: false,
    });
    expect(parseVolumeSpec({ encrypt: 'true', fs: 'xfs', size: '1G' }, defaults)).toEqual({
      error: 'encryption is for ext4 only (fscrypt), not xfs',
    });
    expect(parseVolumeSpec({ fs: 'xfs', size: '1G' }, { ...defaults, encrypt: true })).toEqual({
      error:
        'encryption is for ext4 only (fscrypt), not xfs (the daemon encrypts by default: add -o encrypt=false to have none)',
    });
    expect(parseVolumeSpec({ encrypt: 'true', backend: 'disk' }, defaults)).toMatchObject({
      error: expect.stringMatching(/for loop volumes only/),
    });
    expect(parseVolumeSpec({ encrypt: 'yes' }, defaults)).toEqual({
      error: 'option encrypt: encrypt must be true or false',
    });
  });

  it('leaves a clone to its source', () => {
    expect(parseVolumeSpec({ from: 'src' }, { ...defaults, encrypt: true })).toMatchObject({
      encrypt: false,
    });
    expect(parseVolumeSpec({ from: 'src', encrypt: 'true' }, defaults)).toMatchObject({
      error: expect.stringMatching(/a clone \(from=\) is encrypted exactly when its source is/),
    });
  });
});

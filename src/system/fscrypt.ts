import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { type Libc, loadLibc } from './libc.js';

// <linux/fscrypt.h>; the request numbers and struct sizes were checked against the header with a C
// program (sizeof and the _IOWR macros) on this kernel's headers.
const FS_IOC_SET_ENCRYPTION_POLICY = 0x800c6613;
const FS_IOC_GET_ENCRYPTION_POLICY_EX = 0xc0096616;
const FS_IOC_ADD_ENCRYPTION_KEY = 0xc0506617;
const FS_IOC_REMOVE_ENCRYPTION_KEY = 0xc0406618;
const FS_IOC_GET_ENCRYPTION_KEY_STATUS = 0xc080661a;

const FSCRYPT_POLICY_V2 = 2;
const FSCRYPT_MODE_AES_256_XTS = 1;
const FSCRYPT_MODE_AES_256_CTS = 4;
/** Names padded to 32 bytes: a directory listing says less about the length of each name. */
const FSCRYPT_POLICY_FLAGS_PAD_32 = 0x03;
const FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER = 2;
export const KEY_IDENTIFIER_BYTES = 16;

/** struct fscrypt_key_specifier: type, reserved, a 32-byte union holding the identifier. */
const KEY_SPEC_SIZE = 40;
const KEY_SPEC_ID_OFFSET = 8;
/** struct fscrypt_add_key_arg: key_spec, raw_size, key_id, 8 reserved u32, then raw[]. */
const ADD_KEY_HEAD = 80;
const ADD_KEY_RAW_SIZE_OFFSET = 40;
/** struct fscrypt_remove_key_arg: key_spec, removal_status_flags, 5 reserved u32. */
const REMOVE_KEY_SIZE = 64;
/** struct fscrypt_get_key_status_arg: key_spec, 6 reserved u32, then status at 64. */
const KEY_STATUS_SIZE = 128;
const KEY_STATUS_OFFSET = 64;
/** struct fscrypt_policy_v2: version, two modes, flags, 4 reserved, the key identifier at 8. */
const POLICY_V2_SIZE = 24;
const POLICY_ID_OFFSET = 8;
/** struct fscrypt_get_policy_ex_arg: policy_size (u64), then the policy. */
const POLICY_EX_SIZE = 8 + POLICY_V2_SIZE;

export type KeyStatus = 'absent' | 'present' | 'incompletely-removed';
const STATUSES: Record<number, KeyStatus> = { 1: 'absent', 2: 'present', 3: 'incompletely-removed' };

/** Whether this kernel's ext4 can encrypt (CONFIG_FS_ENCRYPTION). */
export const ext4CanEncrypt = (): boolean => existsSync('/sys/fs/ext4/features/encryption');

async function ffi(): Promise<Libc> {
  const libc = await loadLibc();
  if (libc instanceof Error) {
    throw new Error(
      `encryption needs the system-call interface (koffi), which did not load: ${libc.message}`,
    );
  }
  return libc;
}

/** Runs one fscrypt ioctl on a directory of the filesystem; `arg` is read and written in place. */
async function ioctlOn(dir: string, request: number, arg: Buffer): Promise<void> {
  const libc = await ffi();
  const handle = await open(dir, 'r');
  try {
    await libc.callAsync('ioctlPtr', handle.fd, request, arg);
  } finally {
    await handle.close();
  }
}

function keySpec(identifier: Buffer, size = KEY_SPEC_SIZE): Buffer {
  const arg = Buffer.alloc(size);
  arg.writeUInt32LE(FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER, 0);
  identifier.copy(arg, KEY_SPEC_ID_OFFSET, 0, KEY_IDENTIFIER_BYTES);
  return arg;
}

/**
 * Adds a v2 master key to the keyring of the filesystem holding `dir`; returns the identifier the
 * kernel computed for it (what a policy names). Adding a key already there only counts a user more.
 */
export async function addKey(dir: string, key: Buffer): Promise<Buffer> {
  const arg = Buffer.alloc(ADD_KEY_HEAD + key.length);
  arg.writeUInt32LE(FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER, 0);
  arg.writeUInt32LE(key.length, ADD_KEY_RAW_SIZE_OFFSET);
  key.copy(arg, ADD_KEY_HEAD);
  try {
    await ioctlOn(dir, FS_IOC_ADD_ENCRYPTION_KEY, arg);
    return Buffer.from(arg.subarray(KEY_SPEC_ID_OFFSET, KEY_SPEC_ID_OFFSET + KEY_IDENTIFIER_BYTES));
  } finally {
    // The key's copy in our memory goes as soon as the kernel has it.
    arg.fill(0);
  }
}

/**
 * Removes a key from the filesystem's keyring: the kernel wipes it and evicts the plain text of
 * files no one has open. Returns whether files still open kept some of it (FILES_BUSY).
 */
export async function removeKey(dir: string, identifier: Buffer): Promise<{ filesBusy: boolean }> {
  const arg = keySpec(identifier, REMOVE_KEY_SIZE);
  await ioctlOn(dir, FS_IOC_REMOVE_ENCRYPTION_KEY, arg);
  return { filesBusy: (arg.readUInt32LE(KEY_SPEC_SIZE) & 1) !== 0 };
}

/** Whether the filesystem holding `dir` has the key named `identifier`. */
export async function keyStatus(dir: string, identifier: Buffer): Promise<KeyStatus> {
  const arg = keySpec(identifier, KEY_STATUS_SIZE);
  await ioctlOn(dir, FS_IOC_GET_ENCRYPTION_KEY_STATUS, arg);
  return STATUSES[arg.readUInt32LE(KEY_STATUS_OFFSET)] ?? 'absent';
}

/**
 * Makes the empty directory `dir` encrypted with the key named `identifier` (a v2 policy:
 * AES-256-XTS contents, AES-256-CTS names). The key must be in the filesystem's keyring.
 */
export async function setPolicy(dir: string, identifier: Buffer): Promise<void> {
  const policy = Buffer.alloc(POLICY_V2_SIZE);
  policy.writeUInt8(FSCRYPT_POLICY_V2, 0);
  policy.writeUInt8(FSCRYPT_MODE_AES_256_XTS, 1);
  policy.writeUInt8(FSCRYPT_MODE_AES_256_CTS, 2);
  policy.writeUInt8(FSCRYPT_POLICY_FLAGS_PAD_32, 3);
  identifier.copy(policy, POLICY_ID_OFFSET, 0, KEY_IDENTIFIER_BYTES);
  await ioctlOn(dir, FS_IOC_SET_ENCRYPTION_POLICY, policy);
}

/** The identifier of the key `dir`'s v2 policy names; undefined when it has no policy (ENODATA). */
export async function policyKey(dir: string): Promise<Buffer | undefined> {
  const arg = Buffer.alloc(POLICY_EX_SIZE);
  arg.writeBigUInt64LE(BigInt(POLICY_V2_SIZE), 0);
  try {
    await ioctlOn(dir, FS_IOC_GET_ENCRYPTION_POLICY_EX, arg);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENODATA') return undefined;
    throw err;
  }
  if (arg.readUInt8(8) !== FSCRYPT_POLICY_V2) {
    throw new Error(`${dir} has an fscrypt policy of version ${arg.readUInt8(8)}, not the v2 loopvol sets`);
  }
  const at = 8 + POLICY_ID_OFFSET;
  return Buffer.from(arg.subarray(at, at + KEY_IDENTIFIER_BYTES));
}

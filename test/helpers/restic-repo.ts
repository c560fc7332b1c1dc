import { createCipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';

/**
 * `restic init` for tests, without its cost. restic calibrates scrypt to about 0.5 s of CPU, writes
 * those parameters into the key file, and every later restic process on the repository pays them
 * again to open it: hundreds of runs in the suite. Here the repository is laid out as restic 0.14's
 * `init` lays out a local one, but its key file names cheap scrypt parameters, which restic reads
 * from the file (internal/repository/key.go). Only tests do this; loopvol never makes repositories.
 *
 * The format (internal/crypto): a user key is scrypt(password, salt, N, r, p) into 64 bytes, 32 for
 * AES-256 and 32 for Poly1305-AES (k for AES-128, r for Poly1305); sealed data is
 * IV(16) || AES-256-CTR(plaintext) || Poly1305-AES tag of the ciphertext under nonce IV.
 */

/** N=2^10, r=8, p=1: about 1 MiB and a millisecond, against restic's calibrated 2^15, 8, 4. */
const KDF = { N: 1024, r: 8, p: 1 };

/**
 * A chunker polynomial (irreducible, degree 53; restic checks both when it opens the repository):
 * the one restic's chunker uses in its own tests. restic draws one at random per repository so
 * that chunk boundaries do not leak across repositories, which tests do not care about.
 */
const CHUNKER_POLYNOMIAL = '3da3358b4dc173';

interface Keys {
  encrypt: Buffer;
  macK: Buffer;
  macR: Buffer;
}

const P1305 = (1n << 130n) - 5n;
const CLAMP = 0x0ffffffc0ffffffc0ffffffc0fffffffn;

const fromLE = (b: Buffer): bigint => BigInt(`0x${Buffer.from(b).reverse().toString('hex') || '0'}`);

/** Poly1305 (RFC 8439 §2.5) over `msg` with the one-time key r || s. */
function poly1305(msg: Buffer, r: Buffer, s: Buffer): Buffer {
  const rr = fromLE(r) & CLAMP;
  let acc = 0n;
  for (let i = 0; i < msg.length; i += 16) {
    const block = msg.subarray(i, i + 16);
    acc = ((acc + fromLE(block) + (1n << BigInt(8 * block.length))) * rr) % P1305;
  }
  const tag = (acc + fromLE(s)) & ((1n << 128n) - 1n);
  return Buffer.from(tag.toString(16).padStart(32, '0'), 'hex').reverse();
}

/** restic's crypto.Key.Seal with a fresh IV: IV || ciphertext || tag. */
function seal(keys: Keys, plaintext: Buffer): Buffer {
  const iv = randomBytes(16);
  const ctr = createCipheriv('aes-256-ctr', keys.encrypt, iv);
  const ciphertext = Buffer.concat([ctr.update(plaintext), ctr.final()]);
  // Poly1305-AES: s is the nonce encrypted under k.
  const ecb = createCipheriv('aes-128-ecb', keys.macK, null).setAutoPadding(false);
  const s = ecb.update(iv);
  return Buffer.concat([iv, ciphertext, poly1305(ciphertext, keys.macR, s)]);
}

/**
 * `restic init --repo REPO --password-file PASSWORD_FILE` with a cheap key: `repo` is a new local
 * directory; the password is the file's content without surrounding white space, as restic reads it.
 */
export async function initRepository(repo: string, passwordFile: string): Promise<void> {
  const password = (await readFile(passwordFile, 'utf8')).trim();
  const master: Keys = { encrypt: randomBytes(32), macK: randomBytes(16), macR: randomBytes(16) };
  const salt = randomBytes(64);
  const derived = scryptSync(password, salt, 64, KDF);
  const user: Keys = {
    encrypt: derived.subarray(0, 32),
    macK: derived.subarray(32, 48),
    macR: derived.subarray(48, 64),
  };
  const masterJson = JSON.stringify({
    mac: { k: master.macK.toString('base64'), r: master.macR.toString('base64') },
    encrypt: master.encrypt.toString('base64'),
  });
  const key = Buffer.from(
    JSON.stringify({
      created: new Date().toISOString(),
      username: userInfo().username,
      hostname: hostname(),
      kdf: 'scrypt',
      ...KDF,
      salt: salt.toString('base64'),
      data: seal(user, Buffer.from(masterJson)).toString('base64'),
    }),
  );
  const config = JSON.stringify({
    version: 2,
    id: randomBytes(32).toString('hex'),
    chunker_polynomial: CHUNKER_POLYNOMIAL,
  });

  // The local backend's default layout, as restic init makes it (0700 directories, 0400 files).
  const hex = (i: number) => i.toString(16).padStart(2, '0');
  const dirs = [
    'keys',
    'locks',
    'snapshots',
    'index',
    ...Array.from({ length: 256 }, (_, i) => `data/${hex(i)}`),
  ];
  await mkdir(repo, { mode: 0o700 });
  for (const dir of dirs) await mkdir(join(repo, dir), { recursive: true, mode: 0o700 });
  const keyName = createHash('sha256').update(key).digest('hex');
  await writeFile(join(repo, 'keys', keyName), key, { mode: 0o400 });
  await writeFile(join(repo, 'config'), seal(master, Buffer.from(config)), { mode: 0o400 });
}

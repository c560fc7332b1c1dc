import { readFileSync, statSync } from 'node:fs';
import { keyFileProblem } from '../encryption/keys.js';
import { ext4CanEncrypt } from '../system/fscrypt.js';
import { bad, type Finding, ok } from './finding.js';

/**
 * The implementation of xts(aes) the kernel would use (the highest priority in /proc/crypto), once
 * something has used it; undefined before that or where /proc/crypto cannot be read.
 */
function aesXtsDriver(): string | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/crypto', 'utf8');
  } catch {
    return undefined;
  }
  const entries = text.split('\n\n').map((block) => {
    const field = (key: string) => block.match(new RegExp(`^${key}\\s*: (.*)$`, 'm'))?.[1];
    return { name: field('name'), driver: field('driver'), priority: Number(field('priority') ?? 0) };
  });
  return entries.filter((e) => e.name === 'xts(aes)').sort((a, b) => b.priority - a.priority)[0]?.driver;
}

/** The kernel's fscrypt on ext4, and the master key file: a fail only where encryption is configured. */
export function checkEncryption(keyFile: string | undefined): Finding[] {
  const kernel = ext4CanEncrypt()
    ? ok('encryption', "this kernel's ext4 encrypts (fscrypt): -o encrypt=true works with --key-file")
    : bad(
        keyFile ? 'fail' : 'warn',
        'encryption',
        "this kernel's ext4 has no encryption (/sys/fs/ext4/features/encryption is missing)",
        'use a kernel built with CONFIG_FS_ENCRYPTION for -o encrypt=true',
      );
  const cipher = aesXtsDriver();
  const speed =
    cipher && /^xts\((ecb\()?aes-(generic|fixed-time)/.test(cipher)
      ? [
          bad(
            'warn',
            'encryption speed',
            `the kernel encrypts with ${cipher}, AES in software: encrypted volumes write several times slower`,
            'use a kernel with the AES instructions driver (aesni_intel on x86, aes-ce on arm64)',
          ),
        ]
      : [];
  if (!keyFile) return [kernel, ...speed];
  let problem: string | undefined;
  try {
    problem = keyFileProblem(statSync(keyFile));
  } catch (err) {
    problem = `cannot be read (${(err as NodeJS.ErrnoException).code})`;
  }
  const fix = 'the daemon refuses to start with it until it is fixed (see docs/security.md)';
  return [
    kernel,
    ...speed,
    problem
      ? bad('fail', 'key file', `${keyFile} ${problem}`, fix)
      : ok('key file', `${keyFile}: root's, readable by root only`),
  ];
}

import { describe, expect, it } from 'vitest';
import { checkRepository, redactCredentials } from '../../src/system/restic.js';

describe('redactCredentials', () => {
  it.each([
    ['rest:https://alice:s3cr3t@backup.example:8000/repo', 'rest:https://alice:***@backup.example:8000/repo'],
    ['rest:http://alice:p%40ss@127.0.0.1:1/', 'rest:http://alice:***@127.0.0.1:1/'],
    [
      's3:https://AKIAEXAMPLE:wJalr+XUtn=FEMI@minio.local/bucket',
      's3:https://AKIAEXAMPLE:***@minio.local/bucket',
    ],
    ['sftp://bob:hunter2@host:22//srv/restic', 'sftp://bob:***@host:22//srv/restic'],
    ['sftp:bob:hunter2@host:/srv/restic', 'sftp:bob:***@host:/srv/restic'],
    [
      'Fatal: unable to open config file: Head "http://alice:s3cr3t@127.0.0.1:1/repo/config": refused',
      'Fatal: unable to open config file: Head "http://alice:***@127.0.0.1:1/repo/config": refused',
    ],
  ])('hides the password in %j', (text, redacted) => {
    expect(redactCredentials(text)).toBe(redacted);
  });

  it.each([
    '/srv/restic-repo',
    'sftp:bob@host:/srv/restic',
    'rest:https://backup.example:8000/repo',
    's3:s3.amazonaws.com/bucket',
    'restic backup failed (exit 1)',
    'rest:http://alice:***@127.0.0.1:1/',
  ])('leaves %j, which holds no password, as it is', (text) => {
    expect(redactCredentials(text)).toBe(text);
  });

  it('hides every URL of a message', () => {
    expect(redactCredentials('a http://u:one@h/ b https://v:two@k/')).toBe(
      'a http://u:***@h/ b https://v:***@k/',
    );
  });

  it('hides them where restic cannot even start (the error names its command line)', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const check = checkRepository({ repository: 'rest:http://a:s3cr3t@127.0.0.1:1/', passwordFile: '/pw' });
      await expect(check).rejects.toThrow(
        /^restic check of the repository failed: restic --repo rest:http:\/\/a:\*\*\*@/,
      );
      await expect(check).rejects.not.toThrow(/s3cr3t/);
    } finally {
      process.env.PATH = path;
    }
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localSnapshotId } from '../../src/system/restic.js';

const full = (prefix: string) => prefix + '0'.repeat(64 - prefix.length);

describe("a backup's full id from restic's short one, without another restic process", () => {
  let repo = '';
  beforeAll(async () => {
    repo = await mkdtemp(join(tmpdir(), 'loopvol-ids-'));
    await mkdir(join(repo, 'snapshots'));
    for (const id of [full('4a505b7c'), full('1319b540a'), full('1319b540b')]) {
      await writeFile(join(repo, 'snapshots', id), '');
    }
  });
  afterAll(() => rm(repo, { recursive: true, force: true }));

  const of = (repository: string, short: string) =>
    localSnapshotId({ repository, passwordFile: '/dev/null' }, short);

  it('reads it from a local repository, with or without the local: prefix', async () => {
    expect(await of(repo, '4a505b7c')).toBe(full('4a505b7c'));
    expect(await of(`local:${repo}`, '4a505b7c')).toBe(full('4a505b7c'));
  });

  it('leaves an ambiguous or unknown short id, and remote repositories, to a listing', async () => {
    expect(await of(repo, '1319b540')).toBeUndefined();
    expect(await of(repo, 'deadbeef')).toBeUndefined();
    expect(await of(join(repo, 'missing'), '4a505b7c')).toBeUndefined();
    expect(await of('sftp:backup@host:/srv/restic', '4a505b7c')).toBeUndefined();
    expect(await of('rest:https://u:p@host/', '4a505b7c')).toBeUndefined();
    expect(await of('s3:s3.amazonaws.com/bucket', '4a505b7c')).toBeUndefined();
  });
});

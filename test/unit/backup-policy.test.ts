import { describe, expect, it, vi } from 'vitest';
import { Backups } from '../../src/backup/backups.js';
import type { FileBackups } from '../../src/backup/file-backup.js';
import { newestFirst, toForget } from '../../src/backup/retention.js';
import type { ClusterGuard } from '../../src/core/cluster-guard.js';
import { VolumeError } from '../../src/core/errors.js';
import { parseVolumeSpec } from '../../src/core/options.js';
import type { Snapshots } from '../../src/snapshot/snapshots.js';
import { parseRecord, serializeRecord } from '../../src/state/record.js';
import type { Store } from '../../src/state/store.js';
import type { VolumePort } from '../../src/volume/port.js';
import { silentLog } from '../helpers/int-log.js';

const at = (minute: number) => `2026-01-01T00:${String(minute).padStart(2, '0')}:00.123456789Z`;
const b = (id: string, volume: string, generation: number, minute: number) => ({
  id,
  volume,
  generation,
  time: at(minute),
});

describe('backup retention and choice by generation', () => {
  // Generation 1 was the old owner's; the current owner is at 2; a stale copy of generation 1
  // backed up after the takeover (minute 9); `other` is another volume in the same repository.
  const backups = [
    b('g1-old', 'pg', 1, 1),
    b('g1-new', 'pg', 1, 2),
    b('g2-a', 'pg', 2, 3),
    b('g2-b', 'pg', 2, 4),
    b('g1-stale', 'pg', 1, 9),
    b('other', 'mq', 0, 0),
  ];
  const ids = (list: { id: string }[]) => list.map((x) => x.id).sort();

  it('forgets older generations first and keeps the newest of the current one', () => {
    expect(ids(toForget(backups, 'pg', 2, 2))).toEqual(['g1-new', 'g1-old', 'g1-stale']);
    expect(ids(toForget(backups, 'pg', 2, 3))).toEqual(['g1-new', 'g1-old']);
    // keep 1 (and even a bad 0) keeps the current generation's newest, never a stale copy's later one.
    expect(ids(toForget(backups, 'pg', 2, 1))).toEqual(['g1-new', 'g1-old', 'g1-stale', 'g2-a']);
    expect(ids(toForget(backups, 'pg', 2, 0))).toEqual(ids(toForget(backups, 'pg', 2, 1)));
  });

  it("never forgets another volume's backups, nor a later generation's", () => {
    expect(toForget(backups, 'pg', 2, 1).map((x) => x.volume)).not.toContain('mq');
    expect(toForget(backups, 'mq', 0, 1)).toEqual([]);
    // A stale copy (generation 1) pruning leaves the owner's generation-2 backups alone.
    expect(ids(toForget(backups, 'pg', 1, 1))).toEqual(['g1-new', 'g1-old']);
  });

  it('the newest backup is the newest of the newest generation, not the newest in time', () => {
    expect([...backups].filter((x) => x.volume === 'pg').sort(newestFirst)[0]?.id).toBe('g2-b');
  });
});

describe('backups follow ownership', () => {
  it('refuses a backup on an agent that is not the owner, before copying anything', async () => {
    const guard = {
      assertOwner: vi.fn(async () => {
        throw new VolumeError("volume pg now lives on agent agent-b: this agent's copy is stale", 'conflict');
      }),
    } as unknown as ClusterGuard;
    const service = { has: () => false, specOf: () => undefined } as unknown as VolumePort;
    const withCopy = vi.fn();
    const backups = new Backups(
      {} as Store,
      service,
      { withCopy } as unknown as Snapshots,
      { repo: { repository: '/nowhere', passwordFile: '/nowhere' }, keep: 0, cluster: guard },
      {} as FileBackups,
    );
    const refused = backups.backup('pg', silentLog);
    await expect(refused).rejects.toThrow(/now lives on agent agent-b/);
    await expect(refused).rejects.toMatchObject({ kind: 'conflict' });
    expect(guard.assertOwner).toHaveBeenCalledWith('pg', silentLog);
    expect(withCopy).not.toHaveBeenCalled();
  });
});

describe('backup-verify schedule', () => {
  it('survives a restart: volume.json keeps it', () => {
    const spec = parseVolumeSpec(
      { size: '64M', backup: '1h', 'backup-verify': '1d' },
      { sizeBytes: 0, fs: 'ext4' },
    );
    if ('error' in spec) throw new Error(spec.error);
    const record = {
      version: 1,
      name: 'pg',
      createdAt: at(0),
      spec,
      initialized: true,
      holders: {},
    } as const;
    expect(parseRecord(serializeRecord(record)).spec).toMatchObject({
      backupEverySeconds: 3600,
      verifyEverySeconds: 86400,
    });
  });
});

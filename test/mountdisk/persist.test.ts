import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addFstabEntry,
  fstabLine,
  hasFstabEntry,
  mountUnit,
  removeFstabEntry,
} from '../../src/mountdisk/persist.js';
import { escapeSystemdPath, mountUnitName } from '../../src/mountdisk/systemd-escape.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';

describe('systemd path escaping (as systemd-escape --path)', () => {
  it.each([
    ['/dcos/volume0', 'dcos-volume0'],
    ['/dcos/volume12/', 'dcos-volume12'],
    ['//dcos//volume1', 'dcos-volume1'],
    ['/', '-'],
    ['/mnt/my disk', 'mnt-my\\x20disk'],
    ['/a-b/c.d', 'a\\x2db-c.d'],
    ['/.hidden/x', '\\x2ehidden-x'],
    ['/data/ü', 'data-\\xc3\\xbc'],
  ])('%s → %s', (path, escaped) => {
    expect(escapeSystemdPath(path)).toBe(escaped);
  });

  it('names the mount unit after the escaped path', () => {
    expect(mountUnitName('/dcos/volume0')).toBe('dcos-volume0.mount');
  });

  it('writes a mount unit ordered before the agent', () => {
    const unit = mountUnit(
      '/var/lib/loopvol/mount-disks/volume0.img',
      '/dcos/volume0',
      'dcos-mesos-slave.service',
    );
    expect(unit).toContain('What=/var/lib/loopvol/mount-disks/volume0.img\nWhere=/dcos/volume0\nType=ext4\n');
    expect(unit).toContain('Before=dcos-mesos-slave.service');
    expect(unit).toContain('RequiredBy=dcos-mesos-slave.service');
    expect(unit).toContain('WantedBy=local-fs.target');
  });
});

describe('fstab editing', () => {
  let dir: string;
  const original =
    '# /etc/fstab: static file system information.\nUUID=abc / ext4 errors=remount-ro 0 1\n\n/dev/sdb1\t/data  xfs defaults 0 2\n';

  beforeAll(async () => {
    dir = await makeTempDir('fstab');
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  it('appends one line, never twice, and removes only it, keeping the rest byte-exact', async () => {
    const fstab = join(dir, 'fstab');
    await writeFile(fstab, original);
    expect(await addFstabEntry(fstab, '/img/volume0.img', '/dcos/volume0')).toBe(true);
    expect(await addFstabEntry(fstab, '/img/volume0.img', '/dcos/volume0')).toBe(false);
    expect(await readFile(fstab, 'utf8')).toBe(
      `${original}${fstabLine('/img/volume0.img', '/dcos/volume0')}\n`,
    );
    expect(await hasFstabEntry(fstab, '/dcos/volume0')).toBe(true);
    expect(await hasFstabEntry(fstab, '/dcos/volume00')).toBe(false);
    expect(await removeFstabEntry(fstab, '/dcos/volume0')).toBe(true);
    expect(await removeFstabEntry(fstab, '/dcos/volume0')).toBe(false);
    expect(await readFile(fstab, 'utf8')).toBe(original);
  });

  it('ignores commented-out entries and creates a missing fstab', async () => {
    const fstab = join(dir, 'fresh');
    expect(await hasFstabEntry(fstab, '/dcos/volume0')).toBe(false);
    await writeFile(fstab, '# /img/volume0.img /dcos/volume0 ext4 loop 0 2\n');
    expect(await addFstabEntry(fstab, '/img/volume0.img', '/dcos/volume0')).toBe(true);
    expect((await readFile(fstab, 'utf8')).split('\n')).toHaveLength(3);
  });
});

import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ext4Unclean } from '../../src/system/ext4-state.js';
import { filesystemBlockSize } from '../../src/system/fs-geometry.js';
import { filesystemUuidIn, readFilesystemHead } from '../../src/system/fs-head.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { storageAvailable } from '../helpers/tools.js';

const blkid = async (image: string, tag: string) =>
  (await execa('blkid', ['-p', '-o', 'value', '-s', tag, '--', image])).stdout.trim();

/** What loopvol reads from a filesystem's first 2 KiB, against what the tools say of real images. */
describe.runIf(storageAvailable())('filesystem head', () => {
  let dir: string;
  const image = (fs: string) => join(dir, `${fs}.img`);

  beforeAll(async () => {
    dir = await makeTempDir('fs-head');
    await execa('truncate', ['-s', '64M', image('ext4')]);
    await execa('truncate', ['-s', '300M', image('xfs')]);
    await makeFilesystem(image('ext4'), 'ext4', 'sparse-image');
    await makeFilesystem(image('xfs'), 'xfs', 'sparse-image');
  });
  afterAll(async () => {
    if (dir) await cleanupTempDir(dir);
  });

  it.each(['ext4', 'xfs'] as const)(
    'reads the %s UUID as blkid prints it, and its 4 KiB unit',
    async (fs) => {
      const head = readFilesystemHead(image(fs));
      expect(filesystemUuidIn(head, fs)).toBe(await blkid(image(fs), 'UUID'));
      expect(filesystemBlockSize(head, fs)).toBe(4096);
      // The other filesystem's reading finds nothing there.
      expect(filesystemUuidIn(head, fs === 'ext4' ? 'xfs' : 'ext4')).toBeUndefined();
    },
  );

  it('tells a cleanly left ext4 from one marked unclean or in error', async () => {
    expect(ext4Unclean(readFilesystemHead(image('ext4')))).toBeUndefined();
    await execa('debugfs', ['-w', '-R', 'ssv state 0', image('ext4')]);
    expect(ext4Unclean(readFilesystemHead(image('ext4')))).toBe('it was not unmounted cleanly');
    await execa('debugfs', ['-w', '-R', 'ssv state 3', image('ext4')]);
    expect(ext4Unclean(readFilesystemHead(image('ext4')))).toBe('the kernel recorded filesystem errors');
  });

  it('finds nothing in a file too short to hold a filesystem', async () => {
    await execa('truncate', ['-s', '100', join(dir, 'short')]);
    const head = readFilesystemHead(join(dir, 'short'));
    expect(head.length).toBe(100);
    expect(ext4Unclean(head)).toBeUndefined();
    expect(filesystemUuidIn(head, 'ext4')).toBeUndefined();
    expect(filesystemBlockSize(head, 'xfs')).toBeUndefined();
  });
});

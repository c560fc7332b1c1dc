import { describe, expect, it } from 'vitest';
import { parseMountInfo, unescapeMountField } from '../../src/system/mountinfo.js';

describe('unescapeMountField', () => {
  it.each([
    ['/mnt/with\\040space', '/mnt/with space'],
    ['/a\\011tab', '/a\ttab'],
    ['/a\\012nl', '/a\nnl'],
    ['/back\\134slash', '/back\\slash'],
    ['/two\\040\\040spaces', '/two  spaces'],
    ['/plain', '/plain'],
    ['/not\\08escape', '/not\\08escape'],
  ])('unescapes %j', (field, expected) => {
    expect(unescapeMountField(field)).toBe(expected);
  });
});

describe('parseMountInfo', () => {
  it('reads mount point, type, source and super options, with and without optional fields', () => {
    const text = [
      // proc(5)'s example: two optional fields before the separator.
      '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue',
      '22 1 8:1 / / rw,relatime - ext4 /dev/vda rw',
      '40 22 7:3 / /var/lib/loopvol/volumes/pg\\040data/mnt rw,nosuid,nodev shared:40 - xfs /dev/loop3 rw,attr2',
      '41 22 0:50 / /srv/odd\\134name rw - tmpfs my\\040tmp rw,size=10k',
      '',
    ].join('\n');
    expect(parseMountInfo(text)).toEqual([
      { mountPoint: '/mnt2', fsType: 'ext3', source: '/dev/root', superOptions: ['rw', 'errors=continue'] },
      { mountPoint: '/', fsType: 'ext4', source: '/dev/vda', superOptions: ['rw'] },
      {
        mountPoint: '/var/lib/loopvol/volumes/pg data/mnt',
        fsType: 'xfs',
        source: '/dev/loop3',
        superOptions: ['rw', 'attr2'],
      },
      { mountPoint: '/srv/odd\\name', fsType: 'tmpfs', source: 'my tmp', superOptions: ['rw', 'size=10k'] },
    ]);
  });

  it('keeps a mount point whose name contains " - " once escaped', () => {
    const text = '50 22 7:4 / /data/a\\040-\\040b rw - ext4 /dev/loop4 rw\n';
    expect(parseMountInfo(text)).toEqual([
      { mountPoint: '/data/a - b', fsType: 'ext4', source: '/dev/loop4', superOptions: ['rw'] },
    ]);
  });

  it('skips truncated or malformed lines', () => {
    expect(parseMountInfo('garbage\n36 35 98:0 /mnt1\n60 22 7:5 / /x rw - ext4\n')).toEqual([]);
  });

  it('returns an empty list for empty input', () => {
    expect(parseMountInfo('')).toEqual([]);
  });
});

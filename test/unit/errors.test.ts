import { describe, expect, it } from 'vitest';
import { describeError, notFound, VolumeError, wrap } from '../../src/core/errors.js';
import { SyscallError } from '../../src/system/libc.js';

const systemError = (code: string, message: string) => Object.assign(new Error(message), { code });

describe('wrap', () => {
  it("keeps a VolumeError's kind and wording, with the context before it", () => {
    const wrapped = wrap(notFound('pg'), 'cannot create volume copy');
    expect(wrapped).toBeInstanceOf(VolumeError);
    expect(wrapped.kind).toBe('not-found');
    expect(wrapped.message).toBe(`cannot create volume copy: ${notFound('pg').message}`);
  });

  it('says what to do about a full host, as no-space (ENOSPC and EDQUOT)', () => {
    const full = wrap(
      systemError('ENOSPC', "ENOSPC: no space left on device, write '/x'"),
      'cannot mount volume pg',
    );
    expect(full).toMatchObject({
      kind: 'no-space',
      message:
        'cannot mount volume pg: no space left on the host filesystem holding the data root: free space there and try again',
    });
    const quota = wrap(systemError('EDQUOT', 'EDQUOT: disk quota exceeded'), 'cannot snapshot volume pg');
    expect(quota.kind).toBe('no-space');
    expect(quota.message).toMatch(
      /^cannot snapshot volume pg: disk quota exceeded on the host filesystem .*raise the quota/,
    );
  });

  it('makes EBUSY busy, keeping the cause and adding the advice', () => {
    const busy = wrap(
      new SyscallError('umount2', 'EBUSY', 16),
      'volume pg could not be unmounted',
      'find what uses it',
    );
    expect(busy.kind).toBe('busy');
    expect(busy.message).toBe(
      'volume pg could not be unmounted: umount2: EBUSY (device or mountpoint busy); find what uses it',
    );
  });

  it("is internal for anything else, with the cause's message", () => {
    expect(wrap(new Error('mkfs.ext4 failed'), 'cannot create volume pg')).toMatchObject({
      kind: 'internal',
      message: 'cannot create volume pg: mkfs.ext4 failed',
    });
    expect(wrap('odd', 'cannot remove volume pg')).toMatchObject({
      kind: 'internal',
      message: 'cannot remove volume pg: odd',
    });
    expect(wrap(undefined, 'x').kind).toBe('internal');
  });
});

describe('describeError', () => {
  it('gives the operator-facing part of a failure, for log fields', () => {
    expect(describeError(new VolumeError('volume pg is in use', 'conflict'))).toBe('volume pg is in use');
    expect(describeError(systemError('ENOSPC', 'raw'))).toMatch(/^no space left on the host filesystem/);
    expect(describeError(new Error('plain'))).toBe('plain');
    expect(describeError(null)).toBe('null');
  });
});

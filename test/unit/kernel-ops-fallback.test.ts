import { describe, expect, it, vi } from 'vitest';
import { selectKernelOps } from '../../src/system/kernel-ops.js';

// As on a platform koffi ships no addon for, or a single executable that cannot extract its copy.
vi.mock('koffi', () => {
  throw new Error('Cannot find the native Koffi module');
});

describe('kernel operations without the FFI', () => {
  it('falls back to the tools, saying why, when koffi itself does not load', async () => {
    const selected = await selectKernelOps('syscalls');
    expect(selected.ops.via).toBe('tools');
    // (vitest wraps the factory's error in one of its own)
    expect(selected.fallback).toMatch(/^FFI unavailable: /);
  });
});

import type { Libc } from './libc.js';
import { SyscallError } from './libc.js';

/** <unistd.h>: the next data at or after an offset, and the next hole. */
const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** A run of bytes that holds data; everything between runs is a hole. */
export interface DataRange {
  offset: number;
  length: number;
}

/**
 * The data ranges of a sparse file of `size` bytes open as `fd`, in order (SEEK_DATA/SEEK_HOLE:
 * Node has neither). A formatted 1G ext4 image has about ten, 1T a few hundred.
 */
export function dataRanges(libc: Libc, fd: number, size: number): DataRange[] {
  const ranges: DataRange[] = [];
  let at = 0;
  while (at < size) {
    let start: number;
    try {
      start = Number(libc.call('lseek', fd, at, SEEK_DATA));
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'ENXIO') break; // no data after `at`
      throw err;
    }
    const end = Math.min(size, Number(libc.call('lseek', fd, start, SEEK_HOLE)));
    ranges.push({ offset: start, length: end - start });
    at = end;
  }
  return ranges;
}

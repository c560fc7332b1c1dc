import { closeSync, constants, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { crashPoint } from '../core/faults.js';
import type { Libc } from './libc.js';
import { SyscallError } from './libc.js';
import type { LoopAttachOptions } from './loop-options.js';
import { retryFor } from './retry.js';

// <linux/loop.h>
const LOOP_SET_FD = 0x4c00;
const LOOP_CLR_FD = 0x4c01;
const LOOP_SET_STATUS64 = 0x4c04;
const LOOP_SET_DIRECT_IO = 0x4c08;
const LOOP_SET_BLOCK_SIZE = 0x4c09;
const LOOP_CONFIGURE = 0x4c0a;
const LOOP_CTL_GET_FREE = 0x4c82;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_DIRECT_IO = 16;
/** struct loop_info64: eight u64/u32 fields, then lo_file_name at 56; 232 bytes. */
const LOOP_INFO64_SIZE = 232;
const LO_FLAGS_OFFSET = 52;
const LO_FILE_NAME_OFFSET = 56;
const LO_NAME_SIZE = 64;
/** struct loop_config: fd, block_size, struct loop_info64, 8 reserved u64. */
const LOOP_CONFIG_SIZE = 8 + LOOP_INFO64_SIZE + 64;
const LOOP_CONFIG_INFO_OFFSET = 8;
/** The kernel's logical block size when none is asked (LOOP_CONFIGURE's default). */
const DEFAULT_BLOCK_SIZE = 512;

/** Another attacher can take the device LOOP_CTL_GET_FREE named before we configure it. */
const CLAIM_ATTEMPTS = 16;
/** 5.x kernels answer EAGAIN to a status or block size change while udev's probe still caches pages. */
const EAGAIN_WAIT_MS = 2_000;

/** How the system calls attach: in one LOOP_CONFIGURE (5.8+), or LOOP_SET_FD then its settings. */
export type LoopIoctlAttach = 'configure' | 'set-fd';

function loopInfo(image: string, flags: number): Buffer {
  const info = Buffer.alloc(LOOP_INFO64_SIZE);
  info.writeUInt32LE(flags, LO_FLAGS_OFFSET);
  // Only informational (losetup -a shows it); the kernel tracks the file itself.
  info.write(image.slice(-(LO_NAME_SIZE - 1)), LO_FILE_NAME_OFFSET, LO_NAME_SIZE - 1);
  return info;
}

function loopConfig(fileFd: number, image: string, options: LoopAttachOptions): Buffer {
  const config = Buffer.alloc(LOOP_CONFIG_SIZE);
  config.writeUInt32LE(fileFd, 0);
  config.writeUInt32LE(options.blockSize ?? 0, 4);
  // A read-only image file makes a read-only device on either path; LOOP_CONFIGURE also takes the flag.
  const flags = (options.directIo ? LO_FLAGS_DIRECT_IO : 0) | (options.readOnly ? LO_FLAGS_READ_ONLY : 0);
  loopInfo(image, flags).copy(config, LOOP_CONFIG_INFO_OFFSET);
  return config;
}

const isErrno = (err: unknown, ...codes: string[]) => err instanceof SyscallError && codes.includes(err.code);

/**
 * Whether the kernel has LOOP_CONFIGURE (5.8+). Asked with a descriptor that cannot be open, a
 * kernel that knows the call answers EBADF before touching the device; an older one answers
 * EINVAL (or ENOTTY) for a request it does not know. Nothing is attached either way.
 */
export async function hasLoopConfigure(libc: Libc): Promise<boolean> {
  const control = openSync('/dev/loop-control', constants.O_RDWR);
  try {
    const handle = await open(
      `/dev/loop${libc.call('ioctl', control, LOOP_CTL_GET_FREE, 0)}`,
      constants.O_RDWR,
    );
    try {
      const config = Buffer.alloc(LOOP_CONFIG_SIZE);
      config.writeUInt32LE(0xffffffff, 0);
      await libc.callAsync('ioctlPtr', handle.fd, LOOP_CONFIGURE, config);
    } catch (err) {
      if (isErrno(err, 'EINVAL', 'ENOTTY')) return false;
      if (!isErrno(err, 'EBADF')) throw err;
    } finally {
      await handle.close();
    }
    return true;
  } finally {
    closeSync(control);
  }
}

/**
 * Kernels before 5.8: bind the file (LOOP_SET_FD), then name it (LOOP_SET_STATUS64) and set what
 * LOOP_CONFIGURE would have (block size, direct I/O), as losetup does there. A failure part-way
 * unbinds the device: it is never left serving the image half-configured. Direct I/O the backing
 * filesystem cannot do (EINVAL) leaves the device buffered, as losetup does (with a warning).
 */
async function configureInSteps(
  libc: Libc,
  deviceFd: number,
  fileFd: number,
  image: string,
  options: LoopAttachOptions,
): Promise<void> {
  await libc.callAsync('ioctl', deviceFd, LOOP_SET_FD, fileFd);
  try {
    crashPoint('mount:set-fd');
    const untilSettled = (step: () => Promise<number>) =>
      retryFor(EAGAIN_WAIT_MS, step, (err) => isErrno(err, 'EAGAIN'));
    await untilSettled(() => libc.callAsync('ioctlPtr', deviceFd, LOOP_SET_STATUS64, loopInfo(image, 0)));
    const blockSize = options.blockSize || DEFAULT_BLOCK_SIZE;
    await untilSettled(() => libc.callAsync('ioctl', deviceFd, LOOP_SET_BLOCK_SIZE, blockSize));
    if (options.directIo) {
      await libc.callAsync('ioctl', deviceFd, LOOP_SET_DIRECT_IO, 1).catch((err) => {
        if (!isErrno(err, 'EINVAL')) throw err;
      });
    }
  } catch (err) {
    await libc.callAsync('ioctl', deviceFd, LOOP_CLR_FD, 0).catch(() => undefined);
    throw err;
  }
}

/**
 * Attaches `image` to a free loop device with system calls, no losetup process: in one
 * LOOP_CONFIGURE (the device never exists half-configured), or on older kernels in steps
 * (see configureInSteps). Returns /dev/loopN.
 */
export async function attachLoopIoctl(
  libc: Libc,
  image: string,
  options: LoopAttachOptions,
  how: LoopIoctlAttach = 'configure',
): Promise<string> {
  const control = openSync('/dev/loop-control', constants.O_RDWR);
  try {
    const file = openSync(image, options.readOnly ? constants.O_RDONLY : constants.O_RDWR);
    try {
      for (let attempt = 1; ; attempt++) {
        const device = `/dev/loop${libc.call('ioctl', control, LOOP_CTL_GET_FREE, 0)}`;
        const handle = await open(device, constants.O_RDWR);
        try {
          if (how === 'configure') {
            await libc.callAsync('ioctlPtr', handle.fd, LOOP_CONFIGURE, loopConfig(file, image, options));
          } else {
            await configureInSteps(libc, handle.fd, file, image, options);
          }
          return device;
        } catch (err) {
          if (!isErrno(err, 'EBUSY') || attempt >= CLAIM_ATTEMPTS) {
            throw new Error(`cannot attach ${image} to ${device}: ${(err as Error).message}`);
          }
        } finally {
          await handle.close();
        }
      }
    } finally {
      closeSync(file);
    }
  } finally {
    closeSync(control);
  }
}

/**
 * Detaches a loop device. A device still open elsewhere (udev's probe, a container's copy of the
 * mount) is marked autoclear by the kernel and goes at its last close; one already gone answers
 * ENXIO. Both mean the device is on its way out, so neither is an error. The teardown itself runs
 * when our descriptor closes, so that close is asynchronous too.
 */
export async function detachLoopIoctl(libc: Libc, device: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(device, constants.O_RDONLY);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENXIO')
      return;
    throw err;
  }
  try {
    await libc.callAsync('ioctl', handle.fd, LOOP_CLR_FD, 0);
  } catch (err) {
    if (isErrno(err, 'ENXIO')) return;
    throw new Error(`cannot detach ${device}: ${(err as Error).message}`);
  } finally {
    await handle.close();
  }
}

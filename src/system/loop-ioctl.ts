import { closeSync, constants, openSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { LoopAttachOptions } from './kernel-ops.js';
import type { Libc } from './libc.js';
import { SyscallError } from './libc.js';

// <linux/loop.h>
const LOOP_CTL_GET_FREE = 0x4c82;
const LOOP_CONFIGURE = 0x4c0a;
const LOOP_CLR_FD = 0x4c01;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_DIRECT_IO = 16;
/** struct loop_config: fd, block_size, struct loop_info64 (232 bytes), 8 reserved u64. */
const LOOP_CONFIG_SIZE = 304;
const LO_FLAGS_OFFSET = 8 + 52;
const LO_FILE_NAME_OFFSET = 8 + 56;
const LO_NAME_SIZE = 64;

/** Another attacher can take the device LOOP_CTL_GET_FREE named before we configure it. */
const CLAIM_ATTEMPTS = 16;

function loopConfig(fileFd: number, image: string, options: LoopAttachOptions): Buffer {
  const config = Buffer.alloc(LOOP_CONFIG_SIZE);
  config.writeUInt32LE(fileFd, 0);
  config.writeUInt32LE(options.blockSize ?? 0, 4);
  const flags = (options.directIo ? LO_FLAGS_DIRECT_IO : 0) | (options.readOnly ? LO_FLAGS_READ_ONLY : 0);
  config.writeUInt32LE(flags, LO_FLAGS_OFFSET);
  // Only informational (losetup -a shows it); the kernel tracks the file itself.
  config.write(image.slice(-(LO_NAME_SIZE - 1)), LO_FILE_NAME_OFFSET, LO_NAME_SIZE - 1);
  return config;
}

/**
 * Attaches `image` to a free loop device in one LOOP_CONFIGURE (kernel 5.8+): no losetup process,
 * and the device never exists half-configured. Returns /dev/loopN.
 */
export async function attachLoopIoctl(
  libc: Libc,
  image: string,
  options: LoopAttachOptions,
): Promise<string> {
  const control = openSync('/dev/loop-control', constants.O_RDWR);
  try {
    const file = openSync(image, options.readOnly ? constants.O_RDONLY : constants.O_RDWR);
    try {
      for (let attempt = 1; ; attempt++) {
        const device = `/dev/loop${libc.call('ioctl', control, LOOP_CTL_GET_FREE, 0)}`;
        const handle = await open(device, constants.O_RDWR);
        try {
          await libc.callAsync('ioctlPtr', handle.fd, LOOP_CONFIGURE, loopConfig(file, image, options));
          return device;
        } catch (err) {
          if (!(err instanceof SyscallError && err.code === 'EBUSY') || attempt >= CLAIM_ATTEMPTS) {
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
    if (err instanceof SyscallError && err.code === 'ENXIO') return;
    throw new Error(`cannot detach ${device}: ${(err as Error).message}`);
  } finally {
    await handle.close();
  }
}

/** A system call failed; `code` is the errno name (EBUSY, ENXIO, ...), as Node's own errors carry. */
export class SyscallError extends Error {
  constructor(
    readonly call: string,
    readonly code: string,
    readonly errno: number,
  ) {
    super(`${call}: ${code} (${describeErrno(code)})`);
    this.name = 'SyscallError';
  }
}

function describeErrno(code: string): string {
  return (
    {
      EBUSY: 'device or mountpoint busy',
      ENXIO: 'no such device or address',
      ENOENT: 'no such file or directory',
      EINVAL: 'invalid argument',
      EPERM: 'operation not permitted',
      EACCES: 'permission denied',
      ENODEV: 'no such device (filesystem type not supported by the kernel?)',
      EUCLEAN: 'filesystem needs cleaning (run the filesystem check)',
      EIO: 'I/O error',
    }[code] ?? 'see errno(3)'
  );
}

type Fn = ((...args: unknown[]) => number) & { async: (...args: unknown[]) => void };

/**
 * The few libc functions Node lacks, through koffi (FFI). Calls that can block on a slow device
 * (mount, umount, detach) go through `callAsync`, which runs them on koffi's worker threads so the
 * event loop keeps serving other volumes meanwhile.
 */
export interface Libc {
  /** Runs `name` on the calling thread; throws SyscallError when it returns -1. */
  call(name: LibcFunction, ...args: unknown[]): number;
  /** Runs `name` on a worker thread; rejects with SyscallError when it returns -1. */
  callAsync(name: LibcFunction, ...args: unknown[]): Promise<number>;
}

const SIGNATURES = {
  ioctl: 'int ioctl(int fd, unsigned long request, unsigned long arg)',
  ioctlPtr: 'int ioctl(int fd, unsigned long request, void *arg)',
  mount:
    'int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)',
  umount2: 'int umount2(const char *target, int flags)',
  lseek: 'int64_t lseek(int fd, int64_t offset, int whence)',
} as const;

export type LibcFunction = keyof typeof SIGNATURES;

let loaded: Promise<Libc | Error> | undefined;

/**
 * Loads koffi and libc once; an Error says why the FFI is unavailable (the caller falls back to
 * the tools). koffi is imported here rather than at the top so that an addon that is missing or
 * does not load (another platform, or the single executable unable to extract it) is such an Error,
 * not a failure to start.
 */
export function loadLibc(): Promise<Libc | Error> {
  loaded ??= tryLoad();
  return loaded;
}

async function tryLoad(): Promise<Libc | Error> {
  try {
    const koffi = await import('koffi');
    const errnoNames = new Map<number, string>(
      Object.entries(koffi.os.errno).map(([name, value]) => [value, name]),
    );
    const lib = koffi.load('libc.so.6');
    const fns = Object.fromEntries(
      Object.entries(SIGNATURES).map(([key, sig]) => [key, lib.func(sig) as unknown as Fn]),
    ) as Record<LibcFunction, Fn>;
    const failure = (name: string) => {
      const errno = koffi.errno();
      return new SyscallError(name, errnoNames.get(errno) ?? `errno ${errno}`, errno);
    };
    return {
      call: (name, ...args) => {
        const result = fns[name](...args);
        if (result === -1) throw failure(name);
        return result;
      },
      // errno is read in the completion callback, before any other call can overwrite it.
      callAsync: (name, ...args) =>
        new Promise((resolve, reject) => {
          fns[name].async(...args, (err: unknown, result: number) => {
            if (err) reject(err);
            else if (result === -1) reject(failure(name));
            else resolve(result);
          });
        }),
    };
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

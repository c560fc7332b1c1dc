import { constants, existsSync, lstatSync, readFileSync, statfsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { release } from 'node:os';
import { dirname } from 'node:path';
import type { ClusterOptions } from '../cluster/options.js';
import { callPlugin, getJson, type PluginAddress } from '../protocol/client.js';
import { runTool } from '../system/exec.js';
import { filesystemUsage } from '../system/fsstat.js';
import { LOOP_ATTACH_LABEL, selectKernelOps } from '../system/kernel-ops.js';
import { checkRepository, type ResticRepo, redactCredentials } from '../system/restic.js';
import { checkEncryption } from './encryption.js';
import { bad, type Finding, ok } from './finding.js';

/** What doctor looks at. */
export interface DoctorTarget {
  dataRoot: string;
  socket: string;
  /** The volume driver name dockerd knows the plugin by. */
  driver: string;
  /** The daemon is the managed plugin `driver` that dockerd runs (found through dockerd). */
  managed?: boolean;
  /** dockerd's API; absent: dockerd is not checked. */
  docker: PluginAddress | undefined;
  /** The daemon's restic repository, if it has one. */
  backup?: ResticRepo;
  /** The daemon's cluster (--cluster), if it is in one. */
  cluster?: ClusterOptions;
  /** The daemon's master key file (--key-file), if it has one. */
  keyFile?: string;
}

/** The programs loopvol runs, and what is lost without each. */
const TOOLS: { name: string; needed: 'fail' | 'warn'; for: string; pkg: string }[] = [
  {
    name: 'losetup',
    needed: 'warn',
    for: 'the fallback when system calls are unavailable',
    pkg: 'util-linux',
  },
  { name: 'mkfs.ext4', needed: 'fail', for: 'ext4 volumes', pkg: 'e2fsprogs' },
  { name: 'e2fsck', needed: 'fail', for: 'checks before mounting and loopvol fsck', pkg: 'e2fsprogs' },
  { name: 'resize2fs', needed: 'fail', for: 'loopvol resize of ext4 volumes', pkg: 'e2fsprogs' },
  { name: 'debugfs', needed: 'warn', for: 'spare images (Create without mkfs)', pkg: 'e2fsprogs' },
  { name: 'mkfs.xfs', needed: 'warn', for: 'xfs volumes (-o fs=xfs)', pkg: 'xfsprogs' },
  { name: 'xfs_growfs', needed: 'warn', for: 'loopvol resize of xfs volumes', pkg: 'xfsprogs' },
  { name: 'xfs_repair', needed: 'warn', for: 'loopvol fsck of xfs volumes', pkg: 'xfsprogs' },
  { name: 'restic', needed: 'warn', for: 'backups and restores', pkg: 'restic' },
];

const PATH_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

async function findProgram(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...PATH_DIRS];
  for (const dir of dirs) {
    const path = `${dir}/${name}`;
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return undefined;
}

function checkRoot(): Finding {
  return process.getuid?.() === 0
    ? ok('root', 'running as root')
    : bad(
        'fail',
        'root',
        'not running as root: loop devices and mounts need it',
        'run loopvol as root (sudo)',
      );
}

async function checkLoopDevices(): Promise<Finding[]> {
  if (!existsSync('/dev/loop-control') || !lstatSync('/dev/loop-control').isCharacterDevice()) {
    return [
      bad('fail', 'loop devices', '/dev/loop-control is missing', 'load the loop module: modprobe loop'),
    ];
  }
  const r = await runTool('losetup', ['--find']).catch(() => undefined);
  if (!r)
    return [ok('loop devices', '/dev/loop-control present (losetup missing: free devices not counted)')];
  return r.exitCode === 0
    ? [ok('loop devices', `/dev/loop-control present; next free device ${r.stdout}`)]
    : [
        bad(
          'fail',
          'loop devices',
          `no free loop device (${r.stderr})`,
          "detach unused devices (loopvol gc) or raise the loop module's max_loop",
        ),
      ];
}

/** LOOP_SET_BLOCK_SIZE, which every attach path needs, came with Linux 4.14. */
const OLDEST_KERNEL = [4, 14] as const;

/**
 * The kernel's release and how loop devices are attached there: the choice the daemon makes at
 * start (from what the kernel answers, or LOOPVOL_LOOP_ATTACH in this environment), made here too.
 */
async function checkLoopAttach(): Promise<Finding> {
  const kernel = release();
  const [major = 0, minor = 0] = kernel.split('.').map((part) => Number.parseInt(part, 10));
  if (major < OLDEST_KERNEL[0] || (major === OLDEST_KERNEL[0] && minor < OLDEST_KERNEL[1])) {
    return bad(
      'fail',
      'loop attach',
      `Linux ${kernel} is older than ${OLDEST_KERNEL.join('.')}: loop devices cannot take a block size`,
      `boot a kernel ${OLDEST_KERNEL.join('.')} or later`,
    );
  }
  try {
    const { ops, loopAttachReason } = await selectKernelOps();
    return ok('loop attach', `Linux ${kernel}: ${LOOP_ATTACH_LABEL[ops.loopAttach]} (${loopAttachReason})`);
  } catch (err) {
    return bad(
      'fail',
      'loop attach',
      `Linux ${kernel}: ${(err as Error).message}`,
      'fix LOOPVOL_LOOP_ATTACH',
    );
  }
}

async function checkTools(): Promise<Finding[]> {
  return Promise.all(
    TOOLS.map(async (tool) => {
      const path = await findProgram(tool.name);
      return path
        ? ok(tool.name, path)
        : bad(tool.needed, tool.name, `not installed: needed for ${tool.for}`, `apt-get install ${tool.pkg}`);
    }),
  );
}

/** A filesystem the kernel has built in or loaded, or can load as a module. */
function checkKernelFs(fs: 'ext4' | 'xfs'): Finding {
  const loaded = readFileSync('/proc/filesystems', 'utf8')
    .split('\n')
    .some((l) => l.trim().split(/\s+/).pop() === fs);
  if (loaded) return ok(`kernel ${fs}`, 'supported');
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  const module = existsSync(`/lib/modules/${release}/kernel/fs/${fs}`);
  if (module) return ok(`kernel ${fs}`, 'available as a module (loaded at the first mount)');
  return bad(
    fs === 'ext4' ? 'fail' : 'warn',
    `kernel ${fs}`,
    `this kernel (${release}) has no ${fs}`,
    `install a kernel with ${fs}, or use -o fs=${fs === 'ext4' ? 'xfs' : 'ext4'}`,
  );
}

/** statfs f_type of the filesystems a data root usually sits on. */
const FS_NAMES: Record<number, string> = {
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
  2035054128: 'overlayfs',
  801189825: 'zfs',
  26985: 'nfs',
};

function checkDataRoot(dataRoot: string): Finding[] {
  if (!existsSync(dataRoot)) {
    const parent = dirname(dataRoot);
    return [
      existsSync(parent)
        ? ok('data root', `${dataRoot} does not exist yet: the daemon creates it`)
        : bad(
            'fail',
            'data root',
            `${dataRoot} and its parent ${parent} do not exist`,
            `create ${parent}, or pass --data-root`,
          ),
    ];
  }
  const info = lstatSync(dataRoot);
  if (!info.isDirectory()) {
    return [
      bad(
        'fail',
        'data root',
        `${dataRoot} is not a plain directory (symlink?)`,
        'point --data-root at a real directory',
      ),
    ];
  }
  const magic = statfsSync(dataRoot).type;
  const type = FS_NAMES[magic] ?? `type 0x${magic.toString(16)}`;
  const space = filesystemUsage(dataRoot);
  const usedRatio = space.totalBytes > 0 ? space.usedBytes / space.totalBytes : 0;
  const gib = (b: number) => `${(b / 2 ** 30).toFixed(1)} GiB`;
  const findings: Finding[] = [];
  const kind = ['tmpfs', 'overlayfs', 'nfs'].includes(type)
    ? bad(
        'warn',
        'data root filesystem',
        `${dataRoot} is on ${type}`,
        `${type} is a poor home for volume images (${type === 'tmpfs' ? 'lost at reboot' : 'slow, and direct I/O may fail'}): use a local ext4 or xfs`,
      )
    : ok('data root filesystem', `${dataRoot} is on ${type}`);
  findings.push(kind);
  findings.push(
    usedRatio > 0.9
      ? bad(
          'warn',
          'data root space',
          `${gib(space.freeBytes)} free of ${gib(space.totalBytes)} (${Math.round(usedRatio * 100)}% used)`,
          'free space there before sparse volumes fill it',
        )
      : ok('data root space', `${gib(space.freeBytes)} free of ${gib(space.totalBytes)}`),
  );
  if ((info.mode & 0o077) !== 0) {
    findings.push(
      bad(
        'warn',
        'data root mode',
        `${dataRoot} is mode 0${(info.mode & 0o777).toString(8)}: other users can read volume images`,
        'the daemon tightens it to 0700 at start; or chmod 0700 it',
      ),
    );
  }
  return findings;
}

async function checkSocket(socket: string): Promise<Finding> {
  if (!existsSync(socket)) {
    return bad(
      'fail',
      'daemon',
      `no socket at ${socket}: the daemon is not running`,
      'start it: systemctl start loopvol, or loopvol serve',
    );
  }
  try {
    const answer = await callPlugin({ kind: 'unix', path: socket }, 'Plugin.Activate', {}, 5_000);
    const implementsDriver = JSON.stringify(answer).includes('VolumeDriver');
    return implementsDriver
      ? ok('daemon', `answers on ${socket}`)
      : bad('fail', 'daemon', `${socket} answers but is not a volume driver`, 'check --socket');
  } catch (err) {
    return bad(
      'fail',
      'daemon',
      `${socket} does not answer: ${(err as Error).message}`,
      'restart the daemon; a stale socket is replaced at start',
    );
  }
}

/** Whether dockerd (if it runs) finds the plugin: listing volumes makes it look for plugins. */
async function checkDocker(docker: PluginAddress, socket: string, driver: string): Promise<Finding> {
  let volumes: { Warnings?: string[] | null };
  try {
    volumes = (await getJson(docker, '/volumes', 10_000)) as typeof volumes;
  } catch (err) {
    return ok('dockerd', `not reachable (${(err as Error).message}): not checked`);
  }
  const warnings = (volumes.Warnings ?? []).filter((w) => w.includes(driver));
  const info = (await getJson(docker, '/info', 10_000)) as { Plugins?: { Volume?: string[] | null } };
  const seen = (info.Plugins?.Volume ?? []).includes(driver);
  if (seen && warnings.length === 0) return ok('dockerd', `sees volume driver ${driver}`);
  if (!socket.startsWith('/run/docker/plugins/')) {
    return bad(
      'fail',
      'dockerd',
      `does not see ${driver}: the socket ${socket} is outside /run/docker/plugins`,
      'serve on /run/docker/plugins/loopvol.sock (the default), or add a spec file in /etc/docker/plugins',
    );
  }
  return bad(
    'fail',
    'dockerd',
    `does not see volume driver ${driver}${warnings.length ? `: ${warnings.join('; ')}` : ''}`,
    'check the daemon log; docker volume ls shows the same warning',
  );
}

async function checkBackupRepo(repo: ResticRepo): Promise<Finding> {
  try {
    await checkRepository(repo);
    return ok('backup repository', `${redactCredentials(repo.repository)} opens with the password file`);
  } catch (err) {
    return bad(
      'fail',
      'backup repository',
      (err as Error).message,
      'create it with restic init, or fix --backup-repo / --backup-password-file',
    );
  }
}

/** Every check, in the order an operator would fix them. */
export async function diagnose(target: DoctorTarget): Promise<Finding[]> {
  const daemon = await checkSocket(target.socket);
  return [
    checkRoot(),
    ...(await checkLoopDevices()),
    await checkLoopAttach(),
    ...(await checkTools()),
    checkKernelFs('ext4'),
    checkKernelFs('xfs'),
    ...checkEncryption(target.keyFile),
    ...checkDataRoot(target.dataRoot),
    daemon,
    ...(target.managed
      ? [ok('dockerd', `runs the managed plugin ${target.driver}`)]
      : target.docker && daemon.status === 'ok'
        ? [await checkDocker(target.docker, target.socket, target.driver)]
        : []),
    ...(target.backup ? [await checkBackupRepo(target.backup)] : []),
    // The ZooKeeper client is loaded only for a cluster, as in the daemon.
    ...(target.cluster ? await (await import('./cluster.js')).checkCluster(target.cluster) : []),
  ];
}

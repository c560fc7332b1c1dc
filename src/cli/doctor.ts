import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { resolveConfig } from '../config/resolve.js';
import { DEFAULTS, ENV } from '../config/settings.js';
import { diagnose } from '../doctor/checks.js';
import { dockerHost } from '../dvdcli/managed.js';
import { printJson, UsageError } from './args.js';

export const DOCTOR_USAGE = `usage: loopvol doctor [--data-root DIR] [--socket PATH] [--driver NAME] [--json]

  Checks what loopvol needs: root, /dev/loop-control and a free loop device, the kernel release
  and how loop devices are attached there (LOOP_CONFIGURE, LOOP_SET_FD or losetup), the tools
  (mkfs.ext4, e2fsck, resize2fs, mkfs.xfs, xfs_growfs, xfs_repair, ...), ext4 and xfs in the kernel,
  the data root's filesystem and free space, the daemon's socket, and whether dockerd (DOCKER_HOST,
  default /var/run/docker.sock; skipped when it is not running) sees the plugin.
  One line per finding, with the fix. Exit 0: nothing broken (warnings allowed); 1: something is.
  --data-root and --socket default as for serve (env LOOPVOL_DATA_ROOT, LOOPVOL_SOCKET); --driver is
  the name dockerd knows the plugin by (default: the socket's file name without .sock).
  With LOOPVOL_BACKUP_REPO and LOOPVOL_BACKUP_PASSWORD_FILE set (as for the daemon), it also opens the
  backup repository. With LOOPVOL_CLUSTER (and LOOPVOL_CLUSTER_AUTH_FILE) set, it checks the auth
  file's mode, that ZooKeeper lets loopvol read its root, and that the root is not open to everyone.`;

export async function doctorCommand(argv: string[]): Promise<void> {
  let values: { 'data-root'?: string; socket?: string; driver?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'data-root': { type: 'string' },
        socket: { type: 'string' },
        driver: { type: 'string' },
        json: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${DOCTOR_USAGE}`);
  }
  const socket = values.socket ?? process.env[ENV.socket] ?? DEFAULTS.socket;
  const repository = process.env[ENV.backupRepo];
  const passwordFile = process.env[ENV.backupPasswordFile];
  const findings = await diagnose({
    dataRoot: values['data-root'] ?? process.env[ENV.dataRoot] ?? DEFAULTS.dataRoot,
    socket,
    driver: values.driver ?? basename(socket).replace(/\.sock$/, ''),
    docker: dockerHost(),
    ...(repository && passwordFile ? { backup: { repository, passwordFile } } : {}),
    ...(process.env[ENV.cluster] ? { cluster: resolveConfig({}, process.env).cluster } : {}),
  });
  if (values.json) printJson(findings);
  else {
    const width = Math.max(...findings.map((f) => f.subject.length));
    for (const f of findings) {
      const fix = f.fix ? `: ${f.fix}` : '';
      process.stdout.write(
        `${f.status.toUpperCase().padEnd(4)}  ${f.subject.padEnd(width)}  ${f.detail}${fix}\n`,
      );
    }
  }
  if (findings.some((f) => f.status === 'fail')) process.exitCode = 1;
}

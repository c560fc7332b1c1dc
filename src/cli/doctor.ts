import { basename } from 'node:path';
import { resolveConfig } from '../config/resolve.js';
import { DEFAULTS, ENV } from '../config/settings.js';
import { diagnose } from '../doctor/checks.js';
import type { Finding } from '../doctor/finding.js';
import { dockerHost, ManagedPluginDisabledError } from '../dvdcli/managed.js';
import { formatHelp, noMore, parseCommandLine, printJson } from './args.js';
import { type DaemonLocation, driverName, locateDaemon } from './daemon-client.js';

export const DOCTOR_HELP = formatHelp({
  usage: ['doctor [--data-root DIR] [--socket PATH] [--driver NAME] [--json]'],
  about:
    "Checks what loopvol needs: root, /dev/loop-control and a free loop device, the kernel release and how loop devices are attached there (LOOP_CONFIGURE, LOOP_SET_FD or losetup), the tools (mkfs.ext4, e2fsck, resize2fs, mkfs.xfs, xfs_growfs, xfs_repair, ...), ext4 and xfs in the kernel, the data root's filesystem and free space (binary units), the daemon's socket, and whether dockerd (DOCKER_HOST, default /var/run/docker.sock; skipped when it is not running) sees the plugin. One line per finding, with the fix.",
  options: [
    ['--data-root DIR', `as for serve (env ${ENV.dataRoot}, default ${DEFAULTS.dataRoot})`],
    ['--socket PATH', `the daemon's socket, as for serve (env ${ENV.socket}, default ${DEFAULTS.socket})`],
    [
      '--driver NAME',
      "the name dockerd knows the plugin by; default the socket's file name without .sock. With no socket at the default path, the managed plugin of this name (default loopvol) that dockerd runs is checked",
    ],
    ['--json', 'print the findings as JSON'],
  ],
  notes: [
    `With ${ENV.backupRepo} and ${ENV.backupPasswordFile} set (as for the daemon), it also opens the backup repository. With ${ENV.cluster} (and ${ENV.clusterAuthFile}) set, it checks the auth file's mode, that ZooKeeper lets loopvol read its root, and that the root is not open to everyone.`,
    'Exit codes: 0 nothing broken (warnings allowed); 1 something is; 2 the command line is wrong.',
  ],
  example: 'loopvol doctor --data-root /srv/loopvol',
});

export const DOCTOR_OPTIONS = {
  'data-root': { type: 'string' },
  socket: { type: 'string' },
  driver: { type: 'string' },
  json: { type: 'boolean' },
} as const;

export async function doctorCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, DOCTOR_OPTIONS);
  noMore(positionals, 0);
  // A managed plugin that is installed but disabled is a finding of its own, not a crash.
  let location: DaemonLocation;
  let disabled: string | undefined;
  try {
    location = await locateDaemon(values.socket, values.driver ?? driverName());
  } catch (err) {
    if (!(err instanceof ManagedPluginDisabledError)) throw err;
    disabled = err.message;
    location = { path: DEFAULTS.socket };
  }
  const { path: socket, managed } = location;
  const repository = process.env[ENV.backupRepo];
  const passwordFile = process.env[ENV.backupPasswordFile];
  const diagnosed = await diagnose({
    dataRoot: values['data-root'] ?? process.env[ENV.dataRoot] ?? DEFAULTS.dataRoot,
    socket,
    driver: managed ?? values.driver ?? basename(socket).replace(/\.sock$/, ''),
    managed: managed !== undefined,
    docker: dockerHost(),
    ...(repository && passwordFile ? { backup: { repository, passwordFile } } : {}),
    ...(process.env[ENV.keyFile] ? { keyFile: process.env[ENV.keyFile] } : {}),
    ...(process.env[ENV.cluster] ? { cluster: resolveConfig({}, process.env).cluster } : {}),
  });
  const findings = disabled
    ? diagnosed.map(
        (f): Finding =>
          f.subject === 'daemon' ? { status: 'fail', subject: 'daemon', detail: disabled } : f,
      )
    : diagnosed;
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

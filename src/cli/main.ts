/** One command: its entry point and usage text. */
interface Command {
  run: (argv: string[]) => Promise<void>;
  usage: string;
}

/**
 * Each command's module is loaded only when that command runs: `serve` does not load the Mesos
 * tooling, and its start-up (which dockerd and the restart time wait for) stays short.
 */
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  serve: {
    summary: 'run the Docker volume plugin daemon',
    load: async () => {
      const m = await import('./serve.js');
      return { run: m.serveCommand, usage: m.SERVE_USAGE };
    },
  },
  dvdcli: {
    summary: 'the dvdcli-compatible client (same as bin/dvdcli) for the Mesos docker/volume isolator',
    load: async () => {
      const m = await import('./dvdcli.js');
      return { run: m.dvdcliCommand, usage: m.DVDCLI_COMMAND_USAGE };
    },
  },
  ls: {
    summary: 'list volumes with size, use, allocation and holders (asks the running daemon)',
    load: async () => {
      const m = await import('./volumes.js');
      return { run: m.lsCommand, usage: m.VOLUMES_USAGE };
    },
  },
  inspect: {
    summary: "one volume's details (asks the running daemon)",
    load: async () => ({ run: (await import('./volumes.js')).inspectCommand, usage: '' }),
  },
  create: {
    summary: 'create a volume with -o options (asks the running daemon)',
    load: async () => ({ run: (await import('./volumes.js')).createCommand, usage: '' }),
  },
  rm: {
    summary: 'remove a volume (asks the running daemon)',
    load: async () => ({ run: (await import('./volumes.js')).rmCommand, usage: '' }),
  },
  fsck: {
    summary: "check (--repair: repair) an unused volume's filesystem (asks the running daemon)",
    load: async () => {
      const m = await import('./maintenance.js');
      return { run: m.fsckCommand, usage: m.MAINTENANCE_USAGE };
    },
  },
  gc: {
    summary: 'clean what interrupted work left behind; --dry-run lists it (asks the running daemon)',
    load: async () => ({ run: (await import('./maintenance.js')).gcCommand, usage: '' }),
  },
  snapshot: {
    summary: 'create, list and remove crash-consistent snapshots of a volume (asks the running daemon)',
    load: async () => {
      const m = await import('./snapshot.js');
      return { run: m.snapshotCommand, usage: m.SNAPSHOT_USAGE };
    },
  },
  backup: {
    summary:
      'back a volume up to the restic repository, or verify its latest backup (asks the running daemon)',
    load: async () => {
      const m = await import('./backup.js');
      return { run: m.backupCommand, usage: m.BACKUP_USAGE };
    },
  },
  backups: {
    summary: "list the repository's backups (asks the running daemon)",
    load: async () => ({ run: (await import('./backup.js')).backupsCommand, usage: '' }),
  },
  restore: {
    summary: 'create a volume from a backup (asks the running daemon)',
    load: async () => ({ run: (await import('./backup.js')).restoreCommand, usage: '' }),
  },
  doctor: {
    summary: 'check this host for what loopvol needs, one line per finding with the fix',
    load: async () => {
      const m = await import('./doctor.js');
      return { run: m.doctorCommand, usage: m.DOCTOR_USAGE };
    },
  },
  resize: {
    summary: 'grow a volume, online when it is mounted',
    load: async () => {
      const m = await import('./resize.js');
      return { run: m.resizeCommand, usage: m.RESIZE_USAGE };
    },
  },
  'mount-disk': {
    summary: 'create, list and remove DC/OS mount disks (/dcos/volume<N>)',
    load: async () => {
      const m = await import('./mount-disk.js');
      return { run: m.mountDiskCommand, usage: m.MOUNT_DISK_USAGE };
    },
  },
  'mesos-resources': {
    summary: 'print or write the MOUNT disk resources a Mesos agent offers',
    load: async () => {
      const m = await import('./mesos-resources.js');
      return { run: m.mesosResourcesCommand, usage: m.MESOS_RESOURCES_USAGE };
    },
  },
  'wait-ready': {
    summary: "wait until the daemon answers on its socket (the unit's ExecStartPost=)",
    load: async () => {
      const m = await import('./wait-ready.js');
      return { run: m.waitReadyCommand, usage: m.WAIT_READY_USAGE };
    },
  },
};

async function usage(): Promise<string> {
  const names = Object.keys(commands);
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const list = names.map((n) => `  ${n.padEnd(width)}${commands[n]?.summary}`).join('\n');
  const details = (await Promise.all(names.map(async (n) => (await commands[n]?.load())?.usage))).filter(
    (u) => u?.startsWith('usage:'),
  );
  return `usage: loopvol <command> [options]\n\ncommands:\n${list}\n\n${details.join('\n\n')}`;
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${await usage()}\n`);
    return;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) throw new Error(`unknown command "${name}"\n\n${await usage()}`);
  await (await command.load()).run(rest);
}

main(process.argv.slice(2)).catch(async (err: Error) => {
  process.stderr.write(`loopvol: ${err.message}\n`);
  // Scripts tell a wrong command line (2) from a refusal or failure (1).
  const { UsageError } = await import('./args.js');
  process.exitCode = err instanceof UsageError ? 2 : 1;
});

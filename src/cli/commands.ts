import type { Options } from './args.js';

/** One command, loaded: its entry point, its --help text, and its flags (for parsing and the docs check). */
export interface Command {
  run: (argv: string[]) => Promise<void>;
  help: string;
  options: Options;
}

/**
 * Each command's module is loaded only when that command runs: `serve` does not load the Mesos
 * tooling, and its start-up (which dockerd and the restart time wait for) stays short.
 */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  serve: {
    summary: 'run the Docker volume plugin daemon',
    load: async () => {
      const m = await import('./serve.js');
      return { run: m.serveCommand, help: m.SERVE_USAGE, options: m.SERVE_OPTIONS };
    },
  },
  dvdcli: {
    summary: 'the dvdcli-compatible client (same as bin/dvdcli) for the Mesos docker/volume isolator',
    load: async () => {
      const m = await import('./dvdcli.js');
      const { DVDCLI_USAGE } = await import('../dvdcli/args.js');
      return { run: m.dvdcliCommand, help: DVDCLI_USAGE, options: m.DVDCLI_OPTIONS };
    },
  },
  ls: {
    summary: 'list volumes with size, use, allocation and holders (asks the running daemon)',
    load: async () => {
      const m = await import('./volumes.js');
      return { run: m.lsCommand, help: m.LS_HELP, options: m.LS_OPTIONS };
    },
  },
  inspect: {
    summary: "one volume's details (asks the running daemon)",
    load: async () => {
      const m = await import('./volumes.js');
      return { run: m.inspectCommand, help: m.INSPECT_HELP, options: m.INSPECT_OPTIONS };
    },
  },
  create: {
    summary: 'create a volume with -o options (asks the running daemon)',
    load: async () => {
      const m = await import('./volumes.js');
      return { run: m.createCommand, help: m.CREATE_HELP, options: m.CREATE_OPTIONS };
    },
  },
  rm: {
    summary: 'remove a volume (asks the running daemon)',
    load: async () => {
      const m = await import('./volumes.js');
      return { run: m.rmCommand, help: m.RM_HELP, options: m.RM_OPTIONS };
    },
  },
  fsck: {
    summary: "check (--repair: repair) an unused volume's filesystem (asks the running daemon)",
    load: async () => {
      const m = await import('./maintenance.js');
      return { run: m.fsckCommand, help: m.FSCK_HELP, options: m.FSCK_OPTIONS };
    },
  },
  gc: {
    summary: 'clean what interrupted work left behind; --dry-run lists it (asks the running daemon)',
    load: async () => {
      const m = await import('./maintenance.js');
      return { run: m.gcCommand, help: m.GC_HELP, options: m.GC_OPTIONS };
    },
  },
  snapshot: {
    summary: 'create, list and remove crash-consistent snapshots of a volume (asks the running daemon)',
    load: async () => {
      const m = await import('./snapshot.js');
      return { run: m.snapshotCommand, help: m.SNAPSHOT_HELP, options: m.SNAPSHOT_OPTIONS };
    },
  },
  backup: {
    summary:
      'back a volume up to the restic repository, or verify its latest backup (asks the running daemon)',
    load: async () => {
      const m = await import('./backup.js');
      return { run: m.backupCommand, help: m.BACKUP_HELP, options: m.BACKUP_OPTIONS };
    },
  },
  backups: {
    summary: "list the repository's backups (asks the running daemon)",
    load: async () => {
      const m = await import('./backup.js');
      return { run: m.backupsCommand, help: m.BACKUPS_HELP, options: m.BACKUPS_OPTIONS };
    },
  },
  restore: {
    summary: 'create a volume from a backup (asks the running daemon)',
    load: async () => {
      const m = await import('./backup.js');
      return { run: m.restoreCommand, help: m.RESTORE_HELP, options: m.RESTORE_OPTIONS };
    },
  },
  doctor: {
    summary: 'check this host for what loopvol needs, one line per finding with the fix',
    load: async () => {
      const m = await import('./doctor.js');
      return { run: m.doctorCommand, help: m.DOCTOR_HELP, options: m.DOCTOR_OPTIONS };
    },
  },
  resize: {
    summary: 'grow a volume, online when it is mounted',
    load: async () => {
      const m = await import('./resize.js');
      return { run: m.resizeCommand, help: m.RESIZE_HELP, options: m.RESIZE_OPTIONS };
    },
  },
  'mount-disk': {
    summary: 'create, list and remove DC/OS mount disks (/dcos/volume<N>)',
    load: async () => {
      const m = await import('./mount-disk.js');
      return { run: m.mountDiskCommand, help: m.MOUNT_DISK_HELP, options: m.MOUNT_DISK_OPTIONS };
    },
  },
  'mesos-resources': {
    summary: 'print or write the MOUNT disk resources a Mesos agent offers',
    load: async () => {
      const m = await import('./mesos-resources.js');
      return {
        run: m.mesosResourcesCommand,
        help: m.MESOS_RESOURCES_HELP,
        options: m.MESOS_RESOURCES_OPTIONS,
      };
    },
  },
  version: {
    summary: "print loopvol's version (also: loopvol --version)",
    load: async () => {
      const m = await import('./version.js');
      return { run: m.versionCommand, help: m.VERSION_HELP, options: {} };
    },
  },
  'wait-ready': {
    summary: "wait until the daemon answers on its socket (the unit's ExecStartPost=)",
    load: async () => {
      const m = await import('./wait-ready.js');
      return { run: m.waitReadyCommand, help: m.WAIT_READY_HELP, options: m.WAIT_READY_OPTIONS };
    },
  },
};

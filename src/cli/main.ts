import { DVDCLI_COMMAND_USAGE, dvdcliCommand } from './dvdcli.js';
import { MESOS_RESOURCES_USAGE, mesosResourcesCommand } from './mesos-resources.js';
import { MOUNT_DISK_USAGE, mountDiskCommand } from './mount-disk.js';
import { RESIZE_USAGE, resizeCommand } from './resize.js';
import { SERVE_USAGE, serveCommand } from './serve.js';

const USAGE = `usage: loopvol <command> [options]

commands:
  serve           run the Docker volume plugin daemon
${DVDCLI_COMMAND_USAGE}
  resize          grow a volume, online when it is mounted
  mount-disk      create, list and remove DC/OS mount disks (/dcos/volume<N>)
  mesos-resources print or write the MOUNT disk resources a Mesos agent offers

${SERVE_USAGE}

${RESIZE_USAGE}

${MOUNT_DISK_USAGE}

${MESOS_RESOURCES_USAGE}`;

const commands: Record<string, (argv: string[]) => Promise<void>> = {
  serve: serveCommand,
  dvdcli: dvdcliCommand,
  resize: resizeCommand,
  'mount-disk': mountDiskCommand,
  'mesos-resources': mesosResourcesCommand,
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) throw new Error(`unknown command "${name}"\n\n${USAGE}`);
  await command(rest);
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`loopvol: ${err.message}\n`);
  process.exitCode = 1;
});

import { diskResources, writeResourcesFile } from '../mountdisk/resources.js';
import { formatHelp, noMore, parseCommandLine, UsageError } from './args.js';

export const MESOS_RESOURCES_HELP = formatHelp({
  usage: ['mesos-resources [--root DIR] [--role ROLE] [--work-dir DIR] [--output FILE]'],
  about:
    "Prints the Mesos disk resources of every mounted ROOT/volume<N> as DC/OS's make_disk_resources.py computes them: floor(free MiB) - 100 (in MiB), an error when that is not positive.",
  options: [
    ['--root DIR', 'where the mount disks are; default /dcos'],
    ['--role ROLE', 'the Mesos role the resources are for; default *'],
    ['--work-dir DIR', "also offer the ROOT disk of the agent's work directory"],
    [
      '--output FILE',
      "write the agent's resources file instead (MESOS_RESOURCES='[...]', extending MESOS_RESOURCES from the environment), atomically",
    ],
  ],
  notes: [
    'Exit codes: 0 done; 1 a disk has nothing to offer or cannot be read; 2 the command line is wrong.',
  ],
  example: 'loopvol mesos-resources --work-dir /var/lib/mesos/slave --output /var/lib/dcos/mesos-resources',
});

export const MESOS_RESOURCES_OPTIONS = {
  root: { type: 'string', default: '/dcos' },
  role: { type: 'string', default: '*' },
  'work-dir': { type: 'string' },
  output: { type: 'string' },
} as const;

export async function mesosResourcesCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, MESOS_RESOURCES_OPTIONS);
  noMore(positionals, 0);
  if (!/^(\*|[A-Za-z0-9_][A-Za-z0-9_.\-/]*)$/.test(values.role))
    throw new UsageError(`--role "${values.role}" is not a Mesos role`);
  for (const [flag, path] of [
    ['--root', values.root],
    ['--work-dir', values['work-dir']],
    ['--output', values.output],
  ] as const) {
    if (path !== undefined && !path.startsWith('/')) throw new UsageError(`${flag} must be an absolute path`);
  }
  const resources = await diskResources(values.root.replace(/\/+$/, ''), values.role, values['work-dir']);
  if (values.output) {
    await writeResourcesFile(values.output, resources, process.env.MESOS_RESOURCES);
    process.stdout.write(`wrote ${resources.length} disk resources to ${values.output}\n`);
  } else {
    process.stdout.write(`${JSON.stringify(resources, null, 2)}\n`);
  }
}

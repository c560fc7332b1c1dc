import { parseArgs } from 'node:util';
import { diskResources, writeResourcesFile } from '../mountdisk/resources.js';

export const MESOS_RESOURCES_USAGE = `usage: loopvol mesos-resources [--root /dcos] [--role ROLE] [--work-dir DIR] [--output FILE]

  Prints the Mesos disk resources of every mounted ROOT/volume<N> as DC/OS's make_disk_resources.py
  computes them: floor(free MiB) - 100, an error when that is not positive. --work-dir adds the ROOT
  disk of the agent's work directory. --output writes the agent's resources file instead
  (MESOS_RESOURCES='[...]', extending MESOS_RESOURCES from the environment), atomically.`;

export async function mesosResourcesCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      root: { type: 'string', default: '/dcos' },
      role: { type: 'string', default: '*' },
      'work-dir': { type: 'string' },
      output: { type: 'string' },
    },
  });
  if (!/^(\*|[A-Za-z0-9_][A-Za-z0-9_.\-/]*)$/.test(values.role))
    throw new Error(`--role "${values.role}" is not a Mesos role`);
  for (const [flag, path] of [
    ['--root', values.root],
    ['--work-dir', values['work-dir']],
    ['--output', values.output],
  ] as const) {
    if (path !== undefined && !path.startsWith('/')) throw new Error(`${flag} must be an absolute path`);
  }
  const resources = await diskResources(values.root.replace(/\/+$/, ''), values.role, values['work-dir']);
  if (values.output) {
    await writeResourcesFile(values.output, resources, process.env.MESOS_RESOURCES);
    process.stdout.write(`wrote ${resources.length} disk resources to ${values.output}\n`);
  } else {
    process.stdout.write(`${JSON.stringify(resources, null, 2)}\n`);
  }
}

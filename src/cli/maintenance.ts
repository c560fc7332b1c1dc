import { parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_HELP } from './daemon-client.js';
import { withProgress } from './progress.js';

export const MAINTENANCE_USAGE = `usage: loopvol fsck NAME [--repair] [--json] [--socket PATH]
       loopvol gc [--dry-run] [--json] [--socket PATH]

  fsck  checks volume NAME's filesystem (e2fsck -f -n, xfs_repair -n); it must be unused.
        --repair applies every fix (e2fsck -y, xfs_repair). Exit 0: clean or repaired; 1: problems
        left (the checker's output says which) or the check was refused.
  gc    cleans what interrupted work left: loop devices of loopvol images with no mount and no
        holder, staging and trash directories, mountpoints of volumes that are gone. Never touches
        anything outside loopvol's directories, and says why it kept what it kept. The daemon also
        runs it at start-up. --dry-run only lists. Exit 1 when something could not be cleaned.
  ${SOCKET_HELP}`;

/** A check of a large filesystem takes as long as it takes. */
const CHECK_TIMEOUT_MS = 3_600_000;

const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  repair: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
} as const;

const parse = (argv: string[]) => parseCommandLine(argv, OPTIONS, MAINTENANCE_USAGE);

export async function fsckCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  const [name] = positionals;
  if (name === undefined || positionals.length !== 1 || values['dry-run'])
    throw new UsageError(MAINTENANCE_USAGE);
  const what = `${values.repair ? 'repairing' : 'checking'} ${name}`;
  const { Fsck: report } = await withProgress(what, () =>
    askDaemon(
      values.socket,
      'Loopvol.Fsck',
      { Name: name, Repair: values.repair === true },
      CHECK_TIMEOUT_MS,
    ),
  );
  if (values.json) printJson(report);
  else {
    process.stdout.write(`$ ${report.command}\n${report.output.join('\n')}\n`);
    const verdict = !report.clean
      ? `${name}: problems left (exit ${report.exitCode})${values.repair ? '' : `: run "loopvol fsck ${name} --repair"`}`
      : report.repaired
        ? `${name}: repaired`
        : `${name}: clean`;
    process.stdout.write(`${verdict}\n`);
  }
  if (!report.clean) process.exitCode = 1;
}

export async function gcCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv);
  if (positionals.length > 0 || values.repair) throw new UsageError(MAINTENANCE_USAGE);
  const dryRun = values['dry-run'] === true;
  const { Findings: findings } = await withProgress(
    dryRun ? 'looking for leftovers' : 'cleaning leftovers',
    () => askDaemon(values.socket, 'Loopvol.Gc', { DryRun: dryRun }, CHECK_TIMEOUT_MS),
  );
  if (values.json) printJson(findings);
  else if (findings.length === 0) process.stdout.write('nothing to clean\n');
  else for (const f of findings) process.stdout.write(`${f.action}: ${f.kind} ${f.target}: ${f.reason}\n`);
  if (findings.some((f) => f.action === 'failed')) process.exitCode = 1;
}

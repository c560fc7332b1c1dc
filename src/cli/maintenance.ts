import { formatHelp, JSON_FLAG, noMore, parseCommandLine, printJson, UsageError } from './args.js';
import { askDaemon, SOCKET_FLAG, SOCKET_OPTION } from './daemon-client.js';
import { withProgress } from './progress.js';

export const FSCK_HELP = formatHelp({
  usage: ['fsck NAME [--repair] [--json] [--socket PATH]'],
  about: "Checks volume NAME's filesystem (e2fsck -f -n, xfs_repair -n); the volume must be unused.",
  options: [
    ['--repair', 'apply every fix (e2fsck -y, xfs_repair)'],
    ['--json', "print the checker's report as JSON"],
    SOCKET_OPTION,
  ],
  notes: [
    "Exit codes: 0 clean or repaired; 1 problems left (the checker's output says which) or the check was refused; 2 the command line is wrong.",
  ],
  example: 'loopvol fsck pg --repair',
});

export const GC_HELP = formatHelp({
  usage: ['gc [--dry-run] [--json] [--socket PATH]'],
  about:
    "Cleans what interrupted work left: loop devices of loopvol images with no mount and no holder, staging and trash directories, mountpoints of volumes that are gone. Never touches anything outside loopvol's directories, and says why it kept what it kept. The daemon also runs it at start-up.",
  options: [
    ['--dry-run', 'only list what it would clean'],
    ['--json', 'print the findings as JSON'],
    SOCKET_OPTION,
  ],
  notes: [
    'Exit codes: 0 done; 1 something could not be cleaned, or the daemon refused; 2 the command line is wrong.',
  ],
  example: 'loopvol gc --dry-run',
});

/** A check of a large filesystem takes as long as it takes. */
const CHECK_TIMEOUT_MS = 3_600_000;

export const FSCK_OPTIONS = { ...SOCKET_FLAG, ...JSON_FLAG, repair: { type: 'boolean' } } as const;
export const GC_OPTIONS = { ...SOCKET_FLAG, ...JSON_FLAG, 'dry-run': { type: 'boolean' } } as const;

export async function fsckCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv, FSCK_OPTIONS);
  const [name] = positionals;
  if (name === undefined) throw new UsageError('missing the volume NAME');
  noMore(positionals, 1);
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
  const { values, positionals } = parseCommandLine(argv, GC_OPTIONS);
  noMore(positionals, 0);
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

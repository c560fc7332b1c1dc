import { type ParseArgsConfig, parseArgs } from 'node:util';

/** A command line that cannot be run; main exits 2 for it, pointing at the command's --help. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs' message, first sentence only: "Unknown option '--x'", without its advice on "--". */
const firstSentence = (message: string) => message.split(/\.\s/)[0]?.replace(/\.$/, '') ?? message;

/** Parses an operator command's flags and positionals; a wrong line is a one-line UsageError. */
export function parseCommandLine<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, strict: true, options });
  } catch (err) {
    throw new UsageError(firstSentence((err as Error).message));
  }
}

type Row = readonly [string, string];

/** What `loopvol CMD --help` shows; `options`: each flag as the help shows it, and what it does. */
export interface Help {
  usage: string[];
  about: string;
  options: readonly Row[];
  /** Further tables after the options, such as create's -o keys. */
  tables?: readonly { title: string; rows: readonly Row[] }[];
  /** Paragraphs after the options: units, exit codes, what else applies. */
  notes?: string[];
  example: string;
}

const WIDTH = 100;

/** Words into lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 1 + word.length <= width)
      lines[lines.length - 1] = `${last} ${word}`;
    else lines.push(word);
  }
  return lines;
}

const indent = (text: string, by: number) => wrap(text, WIDTH - by).map((l) => `${' '.repeat(by)}${l}`);

/** Labels in a column, each text wrapped beside its label. */
function table(rows: readonly Row[]): string[] {
  const column = Math.max(...rows.map(([label]) => label.length)) + 4;
  return rows.flatMap(([label, text]) =>
    indent(text, column).map((line, i) => (i === 0 ? `  ${label}`.padEnd(column) + line.trimStart() : line)),
  );
}

/** A command's help in one layout: usage lines, what it does, options in a column, notes, an example. */
export function formatHelp(help: Help): string {
  return [
    ...help.usage.map((u, i) => `${i === 0 ? 'usage: ' : '       '}loopvol ${u}`),
    '',
    ...indent(help.about, 2),
    '',
    'options:',
    ...table([...help.options, ['-h, --help', 'this help']]),
    ...(help.tables ?? []).flatMap((t) => ['', `${t.title}:`, ...table(t.rows)]),
    ...(help.notes ?? []).flatMap((n) => ['', ...indent(n, 2)]),
    '',
    'example:',
    `  ${help.example}`,
  ].join('\n');
}

/** The --json switch, as parseArgs takes it. */
export const JSON_FLAG = { json: { type: 'boolean' } } as const;

/** Refuses positionals after the `expected` ones, naming the first. */
export function noMore(positionals: string[], expected: number): void {
  if (positionals.length > expected) throw new UsageError(`unexpected argument "${positionals[expected]}"`);
}

/** --json output: indented, one document. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

import { readFile } from 'node:fs/promises';

/** One line of /proc/self/mountinfo, the fields loopvol uses. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
  /** The filesystem's own options (the field after the source), e.g. rw,noinit_itable. */
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/** Parses mountinfo text (proc(5)): fields before " - " are per-mount, after it fs type and source. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const mountPoint = left.split(' ')[4];
    const [fsType, source, superOptions = ''] = right.split(' ');
    if (mountPoint === undefined || fsType === undefined || source === undefined) continue;
    entries.push({
      mountPoint: unescapeMountField(mountPoint),
      fsType,
      source: unescapeMountField(source),
      superOptions: superOptions.split(','),
    });
  }
  return entries;
}

export async function readMounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The topmost mount at `path`, if any: later lines stack over earlier ones. */
export async function mountAt(path: string): Promise<MountEntry | undefined> {
  return (await readMounts()).findLast((m) => m.mountPoint === path);
}

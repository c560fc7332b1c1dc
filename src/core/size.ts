const KiB = 1024;
const MiB = KiB * 1024;
const GiB = MiB * 1024;
const TiB = GiB * 1024;

/** Largest volume accepted: ext4's file size limit on a 4 KiB-block host, and a guard against typos. */
export const MAX_SIZE_BYTES = 16 * TiB;

const UNITS: Record<string, number> = { b: 1, k: KiB, m: MiB, g: GiB, t: TiB };

/**
 * Parses `64M`, `10G`, `1.5T`, `512MiB`, `10GB`, `1024k`: every spelling is binary (1024-based),
 * since operators write `GB` and mean what `ls -lh` shows. A bare number means GiB because
 * Marathon and REX-Ray send `size=5`. The result is rounded up to a 4 KiB multiple.
 * Returns an error message instead of throwing, so callers can word the context.
 */
export function parseSize(input: string): { bytes: number } | { error: string } {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([bkmgt])(?:i?b)?)?\s*$/i.exec(input);
  if (!match) {
    return { error: `size "${input}" is not a size: use a number with a unit, like 512M, 10G or 1.5T` };
  }
  const value = Number(match[1]);
  const unit = match[2] ? UNITS[match[2].toLowerCase()] : GiB;
  if (unit === undefined) return { error: `size "${input}" has an unknown unit` };
  const bytes = Math.ceil((value * unit) / 4096) * 4096;
  if (!Number.isFinite(bytes) || bytes <= 0) {
    return { error: `size "${input}" must be greater than zero` };
  }
  if (bytes > MAX_SIZE_BYTES) {
    return { error: `size "${input}" is larger than the maximum of ${formatSize(MAX_SIZE_BYTES)}` };
  }
  return { bytes };
}

/** Human form for messages: the largest binary unit that keeps one decimal. */
export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['T', TiB],
    ['G', GiB],
    ['M', MiB],
    ['K', KiB],
  ] as const) {
    if (bytes >= unit) return `${Number((bytes / unit).toFixed(1))}${suffix}`;
  }
  return `${bytes}B`;
}

/**
 * systemd's path escaping (systemd-escape --path): the unit for a mount at /dcos/volume0 must be
 * named dcos-volume0.mount, or systemd ignores it. Slashes become "-", and every byte outside
 * [A-Za-z0-9:_.] (and a leading ".") becomes \xNN.
 */
export function escapeSystemdPath(path: string): string {
  const trimmed = path.replace(/\/+/g, '/').replace(/^\/|\/$/g, '');
  if (trimmed === '') return '-';
  let out = '';
  const bytes = Buffer.from(trimmed, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    const ch = String.fromCharCode(byte);
    if (ch === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(ch) || (ch === '.' && i > 0)) out += ch;
    else out += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function mountUnitName(mountPoint: string): string {
  return `${escapeSystemdPath(mountPoint)}.mount`;
}

import { readFileSync, realpathSync, statSync } from 'node:fs';
import { arch, type } from 'node:os';

/** Go's names for Node's architectures, as the Go dvdcli prints them in OsArch. */
const GO_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i386' };

/** Set by the single-executable build (scripts/build-sea.mjs), which has no package.json beside it. */
declare const LOOPVOL_BUILD: { version: string; built: string } | undefined;

/** loopvol's version and when this build was made. */
export function buildInfo(): { version: string; built: Date } {
  if (typeof LOOPVOL_BUILD !== 'undefined')
    return { version: LOOPVOL_BUILD.version, built: new Date(LOOPVOL_BUILD.built) };
  const packageJson = new URL('../../package.json', import.meta.url);
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  return { version, built: statSync(new URL(import.meta.url)).mtime };
}

/**
 * What `dvdcli version` prints, in the Go dvdcli's six `Key: value` lines (scripts read SemVer).
 * Branch names the implementation; the commit is not recorded in a build of loopvol.
 */
export function versionText(binary: string): string {
  const { version, built } = buildInfo();
  return [
    `Binary: ${realpathSync(binary)}`,
    `SemVer: ${version}`,
    `OsArch: ${type()}-${GO_ARCH[arch()] ?? arch()}`,
    'Branch: loopvol',
    'Commit: unknown',
    `Formed: ${built.toUTCString()}`,
  ].join('\n');
}

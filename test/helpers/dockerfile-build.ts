import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { type Dockerd, startDockerd } from './dockerd-process.js';
import { cleanupTempDir, makeTempDir } from './kernel.js';
import { storageAvailable } from './tools.js';

/**
 * The Dockerfile route of the managed plugin (scripts/base-image, then scripts/build-plugin --base)
 * takes minutes, mostly waiting on Debian's mirror and the npm registry. Run as the `dockerfile`
 * project's global setup, it starts with the test run and overlaps every other file, instead of
 * holding one of the two test forks while it waits; managed-plugin-dockerfile.test.ts, ordered last
 * (vitest.config.ts), then drives the plugin in the dockerd that built it. No vitest import here: a
 * global setup has no test API (nor may it load modules that import it).
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** The directory the build works in; `result.json` appears there when it is over. */
    dockerfileBuild: string;
  }
}

/** The plugin's name, both routes. */
export const PLUGIN = 'loopvol-managed-e2e:latest';

/** What the managed plugin tests need, both routes (the Dockerfile route's base-image: mmdebstrap). */
export const MANAGED_PLUGIN_TOOLS = ['losetup', 'mkfs.ext4', 'mount', 'dockerd', 'docker', 'mmdebstrap'];

const BUILD = new URL('../../scripts/build-plugin', import.meta.url).pathname;
const BASE_IMAGE = new URL('../../scripts/base-image', import.meta.url).pathname;
/** The Debian base image scripts/base-image makes inside the build's dockerd (no registry here). */
const BASE = 'loopvol-base:bookworm';

/** Certificates this host trusts besides Debian's (where a site puts a TLS-intercepting proxy's CA). */
const SITE_CA_DIR = '/usr/local/share/ca-certificates';

/**
 * PATH without pyenv's shims: mmdebstrap runs its python helper (mmtarfilter) once per package,
 * and a shim costs half a second of startup where Debian's python3 takes a few milliseconds.
 */
const PATH = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => !dir.includes('/.pyenv/'))
  .join(delimiter);

/** What the build leaves in `result.json`: the plugin directory, or why there is none. */
export interface Result {
  plugin?: string;
  error?: string;
}

/** Files in the build's directory: the test writes FINISHED when done with the dockerd, which then stops. */
export const RESULT = 'result.json';
export const FINISHED = 'finished';
export const STOPPED = 'stopped';

/**
 * Builds the plugin by the Dockerfile route in the dockerd, as `name`; returns the plugin directory
 * (rootfs and config.json), from which the test creates it again.
 */
async function build(dockerd: Dockerd, name: string, signal: AbortSignal): Promise<string> {
  const options = {
    env: { DOCKER_HOST: `unix://${dockerd.socket}`, PATH, TMPDIR: dockerd.dir },
    cancelSignal: signal,
    all: true,
  };
  await execa(BASE_IMAGE, [BASE], options);
  const plugin = join(dockerd.dir, 'plugin');
  const args = ['--base', BASE, '--name', name, plugin];
  const cas = existsSync(SITE_CA_DIR) ? readdirSync(SITE_CA_DIR).filter((f) => f.endsWith('.crt')) : [];
  if (cas.length > 0) {
    // build-plugin --ca-file: the build stage trusts them; they stay out of the rootfs.
    const caFile = join(dockerd.dir, 'site-ca.pem');
    await writeFile(caFile, cas.map((f) => readFileSync(join(SITE_CA_DIR, f), 'utf8')).join('\n'));
    args.unshift('--ca-file', caFile);
  }
  await execa(BUILD, args, options);
  return plugin;
}

/**
 * Starts a dockerd in `dir` and builds the plugin in it, then leaves both to the test file (a second
 * `docker plugin create` from the directory would cost a minute of CPU): `result.json` says how
 * the build went; the dockerd stops once the test writes FINISHED, or at `signal`.
 */
async function buildAndServe(dir: string, signal: AbortSignal): Promise<void> {
  let dockerd: Dockerd | undefined;
  let result: Result;
  try {
    dockerd = await startDockerd(dir);
    const stop = () => void dockerd?.stop(5_000);
    signal.addEventListener('abort', stop, { once: true });
    result = { plugin: await build(dockerd, PLUGIN, signal) };
  } catch (err) {
    const { message, all } = err as Error & { all?: string };
    result = { error: `${message}\n${all ?? ''}`.slice(-20_000) };
  }
  await writeFile(join(dir, RESULT), JSON.stringify(result));
  while (result.plugin && !signal.aborted && !existsSync(join(dir, FINISHED))) await sleep(1_000);
  await dockerd?.stop();
  await writeFile(join(dir, STOPPED), '');
}

/** vitest global setup: starts the build without waiting for it; the teardown stops and removes it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The test skips then (or, under CI, fails here already).
  if (!storageAvailable(MANAGED_PLUGIN_TOOLS)) return async () => undefined;
  const dir = await makeTempDir('dockerfile-build');
  const controller = new AbortController();
  const job = buildAndServe(dir, controller.signal);
  project.provide('dockerfileBuild', dir);
  return async () => {
    controller.abort();
    await job;
    await cleanupTempDir(dir);
  };
}

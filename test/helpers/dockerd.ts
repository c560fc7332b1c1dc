import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type Docker from 'dockerode';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { run } from '../../src/system/exec.js';
import { type Dockerd, startDockerd } from './dockerd-process.js';
import { cleanupTempDir, makeTempDir } from './kernel.js';
import { type PluginProcess, startPlugin } from './plugin.js';

export { type Dockerd, startDockerd };

/** Where dockerd looks for plugin spec files; /run/docker/plugins is left to the real plugin. */
export const PLUGIN_SPEC_DIR = '/etc/docker/plugins';

const BUSYBOX = '/usr/bin/busybox';

/**
 * Builds a rootfs with the static busybox as /bin/busybox and one symlink per applet (not for
 * "busybox" itself, which would replace the binary), plus `files` (path → content), and imports it
 * as `tag` with PATH=/bin. No registry is involved: the machine has no network.
 */
export async function importBusyboxImage(
  docker: Docker,
  workDir: string,
  tag: string,
  files: Record<string, string> = {},
): Promise<void> {
  const rootfs = join(workDir, `rootfs-${tag.replace(/[^a-z0-9]/gi, '-')}`);
  await mkdir(join(rootfs, 'bin'), { recursive: true });
  await writeFile(join(rootfs, 'bin', 'busybox'), await readFile(BUSYBOX), { mode: 0o755 });
  const applets = (await run(BUSYBOX, ['--list'])).split('\n').filter((a) => a && a !== 'busybox');
  for (const applet of applets) await symlink('busybox', join(rootfs, 'bin', applet));
  for (const [path, content] of Object.entries(files)) {
    const target = join(rootfs, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, content);
  }
  const [repo, version = 'latest'] = tag.split(':');
  const tar = execa('tar', ['-C', rootfs, '-c', '.'], { buffer: { stdout: false } });
  const progress = await docker.importImage(tar.stdout as Readable, {
    repo,
    tag: version,
    changes: ['ENV PATH=/bin'],
  });
  await new Promise<void>((resolve, reject) =>
    docker.modem.followProgress(progress, (err: Error | null) => (err ? reject(err) : resolve())),
  );
  await tar;
  await rm(rootfs, { recursive: true, force: true });
}

/** A plugin spec file that points dockerd at our socket under a name no other test uses. */
export interface PluginSpec {
  driver: string;
  path: string;
  remove(): Promise<void>;
}

export async function installPluginSpec(socket: string): Promise<PluginSpec> {
  const driver = `loopvol-e2e-${randomBytes(4).toString('hex')}`;
  const path = join(PLUGIN_SPEC_DIR, `${driver}.spec`);
  await mkdir(PLUGIN_SPEC_DIR, { recursive: true });
  await writeFile(path, `unix://${socket}\n`, { flag: 'wx' });
  return { driver, path, remove: () => unlink(path).catch(() => undefined) };
}

/** Force-removes every container of this (private) dockerd. */
export async function removeAllContainers(docker: Docker): Promise<void> {
  for (const info of await docker.listContainers({ all: true })) {
    await docker
      .getContainer(info.Id)
      .remove({ force: true })
      .catch(() => undefined);
  }
}

/** What a finished container or exec printed (stdout and stderr together) and its exit code. */
export interface Outcome {
  exitCode: number;
  output: string;
}

/** Reads a multiplexed (non-TTY) Docker stream to its end as text. */
async function readDemuxed(docker: Docker, stream: NodeJS.ReadableStream): Promise<string> {
  const sink = new PassThrough();
  let output = '';
  sink.on('data', (d: Buffer) => {
    output += d.toString();
  });
  docker.modem.demuxStream(stream, sink, sink);
  await new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  });
  return output;
}

/** Runs a shell command in a running container, as `docker exec` does. */
export async function execIn(docker: Docker, container: Docker.Container, script: string): Promise<Outcome> {
  const exec = await container.exec({
    Cmd: ['sh', '-c', script],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const output = await readDemuxed(docker, stream);
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, output };
}

/** Waits for a container to exit and returns its exit code and logs. */
export async function finish(docker: Docker, container: Docker.Container): Promise<Outcome> {
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const logs = await container.logs({ stdout: true, stderr: true, follow: true });
  return { exitCode: StatusCode, output: await readDemuxed(docker, logs) };
}

/** Creates and starts a container running `script` with no network. */
export async function startContainer(
  docker: Docker,
  script: string,
  hostConfig: Docker.HostConfig,
  image = IMAGE,
): Promise<Docker.Container> {
  const container = await docker.createContainer({
    Image: image,
    Cmd: ['sh', '-c', script],
    HostConfig: { NetworkMode: 'none', ...hostConfig },
  });
  try {
    await container.start();
  } catch (err) {
    // A container that never started still references its volumes.
    await container.remove({ force: true }).catch(() => undefined);
    throw err;
  }
  return container;
}

/** `docker run --rm`: runs a script to its end and returns its output and exit code. */
export async function runContainer(
  docker: Docker,
  script: string,
  hostConfig: Docker.HostConfig,
  image = IMAGE,
): Promise<Outcome> {
  const container = await startContainer(docker, script, hostConfig, image);
  try {
    return await finish(docker, container);
  } finally {
    await container.remove({ force: true });
  }
}

/** Everything one e2e test file runs Docker with. */
export interface DockerEnv {
  dockerd: Dockerd;
  docker: Docker;
  spec: PluginSpec;
  /** The volume driver name dockerd knows the plugin by. */
  driver: string;
}

/** Images every e2e file can use: plain busybox, and busybox with content at /data (copy-up). */
export const IMAGE = 'busybox:local';
export const IMAGE_WITH_DATA = 'busybox-data:local';
export const IMAGE_DATA_FILE = '/data/hello.txt';
export const IMAGE_DATA_CONTENT = 'hello from the image\n';

/** Points dockerd at the plugin socket, starts dockerd and imports the test images. */
export async function startDockerEnv(tmp: string, pluginSocket: string): Promise<DockerEnv> {
  const spec = await installPluginSpec(pluginSocket);
  let dockerd: Dockerd;
  try {
    dockerd = await startDockerd(tmp);
  } catch (err) {
    await spec.remove();
    throw err;
  }
  const env = { dockerd, docker: dockerd.docker, spec, driver: spec.driver };
  try {
    await importBusyboxImage(env.docker, tmp, IMAGE);
    await importBusyboxImage(env.docker, tmp, IMAGE_WITH_DATA, { [IMAGE_DATA_FILE]: IMAGE_DATA_CONTENT });
  } catch (err) {
    await runAll([() => dockerd.stop(), () => spec.remove()]);
    throw new Error(
      `importing the test images failed: ${(err as Error).message}\n${tail(await dockerd.log())}`,
    );
  }
  return env;
}

/**
 * Runs every step even when one fails (a failed test must not leak a daemon or a mount), then
 * throws the first error.
 */
export async function runAll(steps: Array<() => Promise<unknown>>): Promise<void> {
  let first: unknown;
  for (const step of steps) {
    try {
      await step();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** The last `lines` lines of a log, for failure reports that stay readable. */
export function tail(text: string, lines = 200): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** What an end-to-end file shares: its temp dir, the plugin (replaceable on restart) and dockerd. */
export interface DockerSuite {
  tmp: string;
  plugin: PluginProcess;
  env: DockerEnv;
  /** Logs of plugins a test killed, printed too when it fails. */
  earlierLogs: string;
}

/**
 * Registers the hooks of an end-to-end describe block: a temp dir, a plugin started with
 * `pluginArgs`, a private dockerd that finds it; logs printed on failure; ordered teardown.
 * Fields are set once beforeAll has run.
 */
export function dockerSuite(
  label: string,
  pluginArgs: string[] = [],
  /** Prepares the temp dir before the plugin starts; returns more plugin arguments. */
  prepare?: (tmp: string) => Promise<string[]>,
): DockerSuite {
  const suite = { earlierLogs: '' } as DockerSuite;
  beforeAll(async () => {
    suite.tmp = await makeTempDir(label);
    const extra = prepare ? await prepare(suite.tmp) : [];
    suite.plugin = await startPlugin(suite.tmp, { args: [...pluginArgs, ...extra] });
    suite.env = await startDockerEnv(suite.tmp, suite.plugin.socket);
  });
  afterAll(() =>
    runAll([
      async () => suite.env && (await removeAllContainers(suite.env.docker)),
      async () => suite.env?.dockerd.stop(),
      async () => suite.plugin?.stop(),
      async () => suite.env?.spec.remove(),
      async () => suite.tmp && (await cleanupTempDir(suite.tmp)),
    ]),
  );
  beforeEach(({ onTestFailed }) => {
    onTestFailed(async () => {
      console.error(`--- dockerd log (tail) ---\n${tail((await suite.env?.dockerd.log()) ?? '')}`);
      if (suite.earlierLogs) console.error(`--- loopvol log before the kill ---\n${tail(suite.earlierLogs)}`);
      console.error(`--- loopvol log (tail) ---\n${tail(suite.plugin?.logs() ?? '')}`);
    });
  });
  return suite;
}

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { loopsFor } from '../../src/system/loop-sysfs.js';
import { detachLoop } from '../../src/system/losetup.js';
import { mountAt } from '../../src/system/mountinfo.js';
import {
  type Dockerd,
  execIn,
  IMAGE,
  importBusyboxImage,
  removeAllContainers,
  runAll,
  runContainer,
  startContainer,
  startDockerd,
  tail,
} from './dockerd.js';
import { FINISHED, MANAGED_PLUGIN_TOOLS, PLUGIN, RESULT, type Result, STOPPED } from './dockerfile-build.js';
import { cleanupTempDir, makeTempDir } from './kernel.js';
import { BIN } from './plugin.js';
import { storageAvailable } from './tools.js';

const BUILD = new URL('../../scripts/build-plugin', import.meta.url).pathname;
const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;
/** The plugin's command line, from plugin-config.json's entrypoint. */
const ENTRYPOINT = '/usr/local/bin/node\0/opt/loopvol/bin/loopvol\0serve\0';

/** The dockerd a test drives; the Dockerfile route's belongs to the global setup. */
type Engine = Pick<Dockerd, 'socket' | 'docker' | 'log' | 'stop'>;

/** Polls for `file` every second; false after `timeoutMs`. */
async function appears(file: string, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; !existsSync(file); await sleep(1_000)) {
    if (Date.now() > deadline) return false;
  }
  return true;
}

/**
 * The Dockerfile route: waits for the build the global setup started (helpers/dockerfile-build.ts)
 * and attaches to its dockerd, where build-plugin created the plugin. Returns the build's directory
 * (the dockerd's), the plugin directory and the engine, whose stop() hands the dockerd back.
 */
async function attachToDockerfileBuild(
  timeoutMs: number,
): Promise<{ dir: string; plugin: string; engine: Engine }> {
  const dir = inject('dockerfileBuild');
  if (!(await appears(join(dir, RESULT), timeoutMs)))
    throw new Error(`the Dockerfile build did not end within ${timeoutMs} ms`);
  const { plugin, error } = JSON.parse(await readFile(join(dir, RESULT), 'utf8')) as Result;
  if (!plugin) throw new Error(`the Dockerfile build failed: ${error}`);
  const socket = join(dir, 'docker.sock');
  const engine: Engine = {
    socket,
    docker: new Docker({ socketPath: socket }),
    log: () => readFile(join(dir, 'dockerd.log'), 'utf8').catch(() => ''),
    stop: async () => {
      await writeFile(join(dir, FINISHED), '');
      await appears(join(dir, STOPPED), 60_000);
    },
  };
  return { dir, plugin, engine };
}

/**
 * How scripts/build-plugin makes the plugin: from the Dockerfile, on a base image made from Debian's
 * packages (no registry here), or --offline from this host's files. One test file per route; the
 * Dockerfile build (minutes) runs from the test run's start (helpers/dockerfile-build.ts).
 */
export type Route = 'Dockerfile' | 'offline';

/**
 * loopvol as a Docker managed plugin: built and created by scripts/build-plugin, its data root a
 * host directory and its mounts under the propagated mount.
 */
export function managedPluginSuite(route: Route): void {
  describe.runIf(storageAvailable(MANAGED_PLUGIN_TOOLS))(
    `loopvol as a Docker managed plugin built by the ${route} route`,
    () => {
      let tmp = '';
      let data = '';
      /** The plugin's directory (rootfs, config.json) that build-plugin made. */
      let pluginDir = '';
      let dockerd: Engine | undefined;

      /** The docker CLI against the private dockerd. */
      const cli = (...args: string[]) => execa('docker', ['-H', `unix://${dockerd?.socket}`, ...args]);

      /** `created`: build-plugin has just created it; otherwise create it from the plugin directory. */
      async function install(created = false): Promise<void> {
        if (!created) await cli('plugin', 'create', PLUGIN, pluginDir);
        // LOOPVOL_MAX_FREEZE: a setting scripts/plugin-config.mjs derived from the settings table.
        await cli(
          'plugin',
          'set',
          PLUGIN,
          `data.source=${data}`,
          'LOOPVOL_LOG_LEVEL=debug',
          'LOOPVOL_MAX_FREEZE=3s',
        );
        await cli('plugin', 'enable', PLUGIN);
      }

      async function uninstall(): Promise<void> {
        await cli('plugin', 'disable', '--force', PLUGIN);
        await cli('plugin', 'rm', '--force', PLUGIN);
      }

      /** PIDs of this dockerd's plugin: its entrypoint, with our data directory in its mount table. */
      async function pluginPids(): Promise<number[]> {
        const pids: number[] = [];
        for (const entry of await readdir('/proc')) {
          if (!/^\d+$/.test(entry)) continue;
          const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
          if (cmdline !== ENTRYPOINT) continue;
          const mounts = await readFile(`/proc/${entry}/mountinfo`, 'utf8').catch(() => '');
          if (mounts.includes(data)) pids.push(Number(entry));
        }
        return pids;
      }

      const image = (name: string) => join(data, 'volumes', name, 'disk.img');

      beforeAll(async () => {
        if (route === 'offline') {
          tmp = await makeTempDir('e2e-managed');
          pluginDir = join(tmp, 'plugin');
          const started = await startDockerd(tmp);
          dockerd = started;
          await execa(BUILD, ['--offline', '--name', PLUGIN, pluginDir], {
            env: { DOCKER_HOST: `unix://${started.socket}` },
          });
        } else {
          // Built by the global setup while the other test files ran; its dockerd has the plugin.
          const build = await attachToDockerfileBuild(840_000);
          ({ dir: tmp, plugin: pluginDir, engine: dockerd } = build);
        }
        data = join(tmp, 'data');
        await mkdir(data);
        await importBusyboxImage(dockerd.docker, tmp, IMAGE);
        await install(true);
      }, 900_000);

      afterAll(() =>
        runAll([
          async () => dockerd && (await removeAllContainers(dockerd.docker)),
          async () => dockerd && (await uninstall().catch(() => undefined)),
          async () => dockerd?.stop(),
          // Devices the plugin attached show paths of its own mount namespace: find them by inode.
          async () => {
            for (const name of await readdir(join(data, 'volumes')).catch(() => [])) {
              for (const device of await loopsFor(image(name))) await detachLoop(device);
            }
          },
          // The Dockerfile route's directory is the global setup's, which removes it.
          async () => route === 'offline' && tmp && (await cleanupTempDir(tmp)),
        ]),
      );

      beforeEach(({ onTestFailed }) => {
        onTestFailed(async () => {
          console.error(`--- dockerd log, plugin included (tail) ---\n${tail((await dockerd?.log()) ?? '')}`);
        });
      });

      it('brings restic, and takes every daemon setting from docker plugin set', async () => {
        expect(existsSync(join(pluginDir, 'rootfs', 'usr', 'bin', 'restic'))).toBe(true);
        const env = await cli('plugin', 'inspect', '--format', '{{json .Settings.Env}}', PLUGIN);
        expect(JSON.parse(env.stdout)).toEqual(
          expect.arrayContaining(['LOOPVOL_MAX_FREEZE=3s', 'LOOPVOL_BACKUP_REPO=', 'LOOPVOL_CLUSTER=']),
        );
      });

      it('serves size-enforced volumes with their images in the host data directory', async () => {
        const docker = dockerd?.docker as NonNullable<Dockerd>['docker'];
        await cli('volume', 'create', '--driver', PLUGIN, '--opt', 'size=64M', 'pg');
        expect(existsSync(image('pg'))).toBe(true);

        const write = await runContainer(docker, 'echo kept > /data/kept && df -k /data | tail -1', {
          Binds: ['pg:/data'],
        });
        expect(write.exitCode, write.output).toBe(0);
        const sizeKiB = Number(write.output.trim().split(/\s+/)[1]);
        expect(sizeKiB).toBeGreaterThan(40 * 1024);
        expect(sizeKiB).toBeLessThanOrEqual(64 * 1024);
        const full = await runContainer(docker, 'dd if=/dev/zero of=/data/big bs=1M count=100 2>&1', {
          Binds: ['pg:/data'],
        });
        expect(full.output).toContain('No space left on device');
        const read = await runContainer(docker, 'rm /data/big; cat /data/kept', { Binds: ['pg:/data'] });
        expect(read).toEqual({ exitCode: 0, output: 'kept\n' });
        expect(await loopsFor(image('pg'))).toEqual([]);
      });

      it('survives kill -9 of the plugin under a running container: dockerd restarts it', async () => {
        const docker = dockerd?.docker as NonNullable<Dockerd>['docker'];
        const container = await startContainer(docker, "trap 'exit 0' TERM; while true; do sleep 1; done", {
          Binds: ['pg:/data'],
        });
        expect(await execIn(docker, container, 'echo before > /data/before')).toEqual({
          exitCode: 0,
          output: '',
        });
        const [pid] = await pluginPids();
        expect(pid).toBeDefined();
        process.kill(pid as number, 'SIGKILL');
        const restarted = async () => (await pluginPids()).some((p) => p !== pid);
        await expect.poll(restarted, { timeout: 30_000, interval: 200 }).toBe(true);

        // The restarted plugin lives in a new mount namespace; a second container must share the
        // first one's filesystem instance (one loop device), not get a second one.
        const second = await runContainer(docker, 'cat /data/before && echo second > /data/second', {
          Binds: ['pg:/data'],
        });
        expect(second).toEqual({ exitCode: 0, output: 'before\n' });
        expect(await loopsFor(image('pg'))).toHaveLength(1);
        expect(await execIn(docker, container, 'cat /data/second')).toEqual({
          exitCode: 0,
          output: 'second\n',
        });

        await container.stop({ t: 10 });
        await container.remove();
        await expect.poll(() => loopsFor(image('pg')), { timeout: 10_000 }).toEqual([]);
      });

      it('shares one filesystem instance across a forced disable and enable under a running container', async () => {
        const docker = dockerd?.docker as NonNullable<Dockerd>['docker'];
        const container = await startContainer(docker, "trap 'exit 0' TERM; while true; do sleep 1; done", {
          Binds: ['pg:/data'],
        });
        // A plugin with volumes is not disabled without --force.
        await expect(cli('plugin', 'disable', PLUGIN)).rejects.toThrow(/in use/);
        // dockerd unmounts the propagated mount on disable: the new plugin instance does not see the
        // volume mounted, only a loop device whose path means nothing in its namespace.
        await cli('plugin', 'disable', '--force', PLUGIN);
        await cli('plugin', 'enable', PLUGIN);
        const third = await runContainer(docker, 'cat /data/second && echo third > /data/third', {
          Binds: ['pg:/data'],
        });
        expect(third).toEqual({ exitCode: 0, output: 'second\n' });
        expect(await execIn(docker, container, 'cat /data/third')).toEqual({
          exitCode: 0,
          output: 'third\n',
        });
        await container.stop({ t: 10 });
        await container.remove();
        await expect.poll(() => loopsFor(image('pg')), { timeout: 10_000 }).toEqual([]);
      });

      it('keeps volumes and their data when the plugin is removed and installed again', async () => {
        const docker = dockerd?.docker as NonNullable<Dockerd>['docker'];
        await uninstall();
        expect(existsSync(image('pg'))).toBe(true);
        await install();
        const read = await runContainer(docker, 'cat /data/kept /data/second /data/third', {
          Binds: ['pg:/data'],
        });
        expect(read).toEqual({ exitCode: 0, output: 'kept\nsecond\nthird\n' });
      });

      it('is found by bin/dvdcli through dockerd, and dvdcli prints the mount as the host sees it', async () => {
        const docker = dockerd?.docker as NonNullable<Dockerd>['docker'];
        const dvdcli = (...args: string[]) =>
          execa(
            process.execPath,
            [DVDCLI, ...args, `--volumedriver=${PLUGIN.split(':')[0]}`, '--volumename=mesos'],
            {
              env: { DOCKER_HOST: `unix://${dockerd?.socket}` },
              reject: false,
            },
          );
        const mount = await dvdcli('mount', '--volumeopts=size=64M');
        expect(mount.exitCode, mount.stderr).toBe(0);
        expect(mount.stdout).toMatch(
          new RegExp(`^${tmp}/docker/plugins/[0-9a-f]{64}/propagated-mount/mesos$`),
        );
        // Mesos runs on the host: it writes through that path, a container reads it back.
        expect(await mountAt(mount.stdout)).toBeDefined();
        await writeFile(join(mount.stdout, 'from-mesos'), 'hello');
        expect(await runContainer(docker, 'cat /data/from-mesos', { Binds: ['mesos:/data'] })).toEqual({
          exitCode: 0,
          output: 'hello',
        });
        // The operator commands find it through dockerd too: it has no socket at the default path.
        const operator = (...args: string[]) =>
          execa(process.execPath, [BIN, ...args], {
            env: { DOCKER_HOST: `unix://${dockerd?.socket}`, LOOPVOL_DRIVER: PLUGIN.split(':')[0] },
            reject: false,
          });
        const ls = await operator('ls', '--json');
        expect(ls.exitCode, ls.stderr).toBe(0);
        expect((JSON.parse(ls.stdout) as { Name: string }[]).map((v) => v.Name)).toContain('mesos');
        const doctor = await operator('doctor', '--json', '--driver', PLUGIN.split(':')[0] as string);
        expect(JSON.parse(doctor.stdout)).toEqual(
          expect.arrayContaining([
            expect.objectContaining({ subject: 'daemon', status: 'ok' }),
            expect.objectContaining({ subject: 'dockerd', status: 'ok' }),
          ]),
        );
        const unmount = await dvdcli('unmount');
        expect(unmount.exitCode, unmount.stderr).toBe(0);
        expect(await mountAt(mount.stdout)).toBeUndefined();
        await cli('volume', 'rm', 'mesos');
      });

      it('removes the image with docker volume rm', async () => {
        await cli('volume', 'rm', 'pg');
        expect(await readdir(join(data, 'volumes'))).toEqual([]);
      });
    },
  );
}

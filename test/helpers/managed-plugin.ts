import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
import { cleanupTempDir, makeTempDir } from './kernel.js';
import { BIN } from './plugin.js';
import { storageAvailable } from './tools.js';

const BUILD = new URL('../../scripts/build-plugin', import.meta.url).pathname;
const BASE_IMAGE = new URL('../../scripts/base-image', import.meta.url).pathname;
/** The Debian base image scripts/base-image makes inside the test's dockerd (no registry here). */
const BASE = 'loopvol-base:bookworm';
const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;
const PLUGIN = 'loopvol-managed-e2e:latest';
/** The plugin's command line, from plugin-config.json's entrypoint. */
const ENTRYPOINT = '/usr/local/bin/node\0/opt/loopvol/bin/loopvol\0serve\0';

/** Certificates this host trusts besides Debian's (where a site puts a TLS-intercepting proxy's CA). */
const SITE_CA_DIR = '/usr/local/share/ca-certificates';

/** The site's extra CAs (a TLS-intercepting proxy's): build-plugin --ca-file gives them to the build stage. */
const siteCas = existsSync(SITE_CA_DIR)
  ? readdirSync(SITE_CA_DIR)
      .filter((f) => f.endsWith('.crt'))
      .map((f) => join(SITE_CA_DIR, f))
  : [];

/**
 * How scripts/build-plugin makes the plugin: from the Dockerfile, on a base image made from Debian's
 * packages (no registry here), or --offline from this host's files. One test file per route, so
 * that the two builds (minutes each) run in parallel.
 */
export type Route = 'Dockerfile' | 'offline';

/**
 * loopvol as a Docker managed plugin: built and created by scripts/build-plugin, its data root a
 * host directory and its mounts under the propagated mount.
 */
export function managedPluginSuite(route: Route): void {
  describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'dockerd', 'docker', 'mmdebstrap']))(
    `loopvol as a Docker managed plugin built by the ${route} route`,
    () => {
      let tmp = '';
      let data = '';
      let dockerd: Dockerd | undefined;

      /** The docker CLI against the private dockerd. */
      const cli = (...args: string[]) => execa('docker', ['-H', `unix://${dockerd?.socket}`, ...args]);

      /** `created`: build-plugin has just created it; otherwise create it from the plugin directory. */
      async function install(created = false): Promise<void> {
        if (!created) await cli('plugin', 'create', PLUGIN, join(tmp, 'plugin'));
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
        tmp = await makeTempDir('e2e-managed');
        data = join(tmp, 'data');
        await mkdir(data);
        dockerd = await startDockerd(tmp);
        const env = { DOCKER_HOST: `unix://${dockerd.socket}` };
        await importBusyboxImage(dockerd.docker, tmp, IMAGE);
        const args = ['--name', PLUGIN, join(tmp, 'plugin')];
        if (route === 'offline') args.unshift('--offline');
        else {
          await execa(BASE_IMAGE, [BASE], { env });
          args.unshift('--base', BASE);
          if (siteCas.length > 0) {
            const caFile = join(tmp, 'site-ca.pem');
            await writeFile(caFile, siteCas.map((f) => readFileSync(f, 'utf8')).join('\n'));
            args.unshift('--ca-file', caFile);
          }
        }
        await execa(BUILD, args, { env });
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
          async () => tmp && (await cleanupTempDir(tmp)),
        ]),
      );

      beforeEach(({ onTestFailed }) => {
        onTestFailed(async () => {
          console.error(`--- dockerd log, plugin included (tail) ---\n${tail((await dockerd?.log()) ?? '')}`);
        });
      });

      it('brings restic, and takes every daemon setting from docker plugin set', async () => {
        expect(existsSync(join(tmp, 'plugin', 'rootfs', 'usr', 'bin', 'restic'))).toBe(true);
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

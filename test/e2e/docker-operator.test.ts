import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';
import { dockerSuite, execIn, runContainer, startContainer } from '../helpers/dockerd.js';
import { freePort } from '../helpers/net.js';
import { BIN, tableRow } from '../helpers/plugin.js';
import { initRepository } from '../helpers/restic-repo.js';
import { storageAvailable } from '../helpers/tools.js';

/** Prometheus text format: the value of one sample, by name and labels as written. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * The day-2 commands against a running daemon that a real dockerd uses: ls while a container
 * holds a volume, doctor, metrics, a dirty filesystem repaired (or refused) at mount, gc.
 */
describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'e2fsck', 'debugfs', 'mount', 'dockerd', 'restic']))(
  'operator commands with Docker',
  () => {
    let port = 0;
    const suite = dockerSuite('e2e-operator', ['--spares', '0'], async (tmp) => {
      port = await freePort();
      // A restic repository the operator made, for backups and restores.
      const repo = join(tmp, 'backups');
      const password = join(tmp, 'backup-password');
      await writeFile(password, 'operator secret\n', { mode: 0o600 });
      await initRepository(repo, password);
      return [
        '--metrics-listen',
        `127.0.0.1:${port}`,
        '--backup-repo',
        repo,
        '--backup-password-file',
        password,
        '--allow-options',
        'default,restore-other',
      ];
    });
    const loopvol = (...args: string[]) =>
      execa(process.execPath, [BIN, ...args, '--socket', suite.plugin.socket], {
        reject: false,
        env: { DOCKER_HOST: `unix://${suite.env.dockerd.socket}` },
      });
    const image = (name: string) => join(suite.plugin.dataRoot, 'volumes', name, 'disk.img');
    /**
     * Waits until no loop device serves the volume's image. A container's mount namespace can keep
     * the filesystem alive for a moment after dockerd's Unmount (the device's detach then waits for
     * its last close), and an image written under a live filesystem is overwritten by it.
     */
    const released = (name: string) =>
      vi.waitFor(
        async () => expect((await execa('losetup', ['--associated', image(name)])).stdout).toBe(''),
        { timeout: 10_000, interval: 50 },
      );

    it('ls shows a volume a container is using, as a table and as JSON', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'inuse', Driver: driver, DriverOpts: { size: '64M' } });
      const container = await startContainer(docker, 'echo data > /data/f; sleep 600', {
        Binds: ['inuse:/data'],
      });
      try {
        const table = await loopvol('ls');
        expect(table.exitCode, table.stderr).toBe(0);
        const row = tableRow(table.stdout, 'inuse');
        expect(row).toEqual([
          'inuse',
          '64M',
          expect.stringMatching(/\d/),
          expect.stringMatching(/\d/),
          'ext4',
          'no',
          'yes',
          '1',
          join(suite.plugin.dataRoot, 'volumes', 'inuse', 'mnt'),
        ]);
        expect(table.stdout).toMatch(/^data root: .* provisioned, .* allocated, .* free$/m);
        const json = JSON.parse((await loopvol('ls', '--json')).stdout) as {
          Name: string;
          Status: Record<string, unknown>;
        }[];
        expect(json.find((v) => v.Name === 'inuse')?.Status).toMatchObject({
          mounted: true,
          holders: 1,
          size: 64 * 2 ** 20,
        });
      } finally {
        await container.remove({ force: true });
      }
      await docker.getVolume('inuse').remove();
    });

    it('doctor finds nothing broken and sees dockerd see the plugin; a missing daemon is a failure', async () => {
      const healthy = await loopvol(
        'doctor',
        '--data-root',
        suite.plugin.dataRoot,
        '--driver',
        suite.env.driver,
      );
      expect(healthy.exitCode, healthy.stdout).toBe(0);
      expect(healthy.stdout).toMatch(
        new RegExp(`^OK\\s+dockerd\\s+sees volume driver ${suite.env.driver}$`, 'm'),
      );
      expect(healthy.stdout).toMatch(/^OK\s+daemon\s+answers on /m);
      expect(healthy.stdout).not.toMatch(/^FAIL/m);

      const gone = join(suite.tmp, 'no-daemon.sock');
      const broken = await execa(
        process.execPath,
        [BIN, 'doctor', '--socket', gone, '--data-root', join(suite.tmp, 'nowhere', 'root'), '--json'],
        { reject: false },
      );
      expect(broken.exitCode).toBe(1);
      const findings = JSON.parse(broken.stdout) as { status: string; subject: string; fix?: string }[];
      expect(
        findings
          .filter((f) => f.status === 'fail')
          .map((f) => f.subject)
          .sort(),
      ).toEqual(['daemon', 'data root']);
      expect(findings.find((f) => f.subject === 'daemon')?.fix).toMatch(/start it/);
    });

    it('serves Prometheus metrics: volumes, space, requests and errors by endpoint', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'measured', Driver: driver, DriverOpts: { size: '32M' } });
      await expect(
        docker.createVolume({ Name: 'refused', Driver: driver, DriverOpts: { size: 'lots' } }),
      ).rejects.toThrow();
      expect((await runContainer(docker, 'echo x > /data/x', { Binds: ['measured:/data'] })).exitCode).toBe(
        0,
      );

      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(sample(text, 'loopvol_volumes')).toBe(1);
      expect(sample(text, 'loopvol_volumes_mounted')).toBe(0);
      expect(sample(text, 'loopvol_provisioned_bytes')).toBe(32 * 2 ** 20);
      expect(sample(text, 'loopvol_allocated_bytes')).toBeGreaterThan(0);
      expect(sample(text, 'loopvol_data_root_free_bytes')).toBeGreaterThan(0);
      expect(sample(text, 'loopvol_data_root_size_bytes')).toBeGreaterThan(0);
      expect(
        sample(text, 'loopvol_request_duration_seconds_count{method="VolumeDriver.Mount"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(
        sample(text, 'loopvol_request_duration_seconds_bucket{le="+Inf",method="VolumeDriver.Get"}'),
      ).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'loopvol_request_errors_total{method="VolumeDriver.Create"}')).toBe(1);
      expect(text).toContain('# TYPE loopvol_request_duration_seconds histogram');
      expect(text).toMatch(/^loopvol_process_resident_memory_bytes \d+/m);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
      await docker.getVolume('measured').remove();
    });

    it('a filesystem left uncleanly is checked and mounted; a damaged one is refused until fsck --repair', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'crashed', Driver: driver, DriverOpts: { size: '64M' } });
      // The image as a host crash leaves it: copied while a container writes (journal needs recovery).
      const container = await startContainer(docker, 'echo kept > /data/kept; sync; sleep 600', {
        Binds: ['crashed:/data'],
      });
      const dirty = join(suite.tmp, 'crashed.img');
      try {
        expect((await execIn(docker, container, 'cat /data/kept')).output).toBe('kept\n');
        await copyFile(image('crashed'), dirty);
      } finally {
        await container.remove({ force: true });
      }
      await released('crashed');
      await copyFile(dirty, image('crashed'));
      const after = await runContainer(docker, 'cat /data/kept', { Binds: ['crashed:/data'] });
      expect(after).toEqual({ exitCode: 0, output: 'kept\n' });
      await suite.plugin.waitForLog(
        /"reason":"it was not unmounted cleanly \(journal needs recovery\)".*"msg":"filesystem was not left cleanly/,
      );

      // Damage preen must not fix by itself: the root directory's inode cleared, errors recorded.
      await released('crashed');
      await execa('debugfs', ['-w', '-R', 'clri <2>', image('crashed')]);
      await execa('debugfs', ['-w', '-R', 'ssv state 2', image('crashed')]);
      await expect(runContainer(docker, 'true', { Binds: ['crashed:/data'] })).rejects.toThrow(
        /cannot mount volume crashed: its filesystem is damaged .*run "loopvol fsck crashed --repair"/,
      );
      const check = await loopvol('fsck', 'crashed');
      expect(check.exitCode).toBe(1);
      expect(check.stdout).toMatch(/crashed: problems left/);
      const repair = await loopvol('fsck', 'crashed', '--repair', '--json');
      expect(repair.exitCode, repair.stderr).toBe(0);
      expect(JSON.parse(repair.stdout)).toMatchObject({
        clean: true,
        repaired: true,
        command: expect.stringMatching(/^e2fsck -f -y/),
      });
      expect((await loopvol('fsck', 'crashed')).stdout).toMatch(/^crashed: clean$/m);
      expect(
        (await runContainer(docker, 'echo again > /data/a && cat /data/a', { Binds: ['crashed:/data'] }))
          .output,
      ).toBe('again\n');
      await docker.getVolume('crashed').remove();
    });

    it('snapshots a volume a container writes to, clones the snapshot through Docker, refuses to lose it', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'src', Driver: driver, DriverOpts: { size: '64M' } });
      const writer = await startContainer(
        docker,
        'echo before > /data/before; sync; i=0; while true; do echo $i >> /data/log; i=$((i+1)); sleep 0.01; done',
        { Binds: ['src:/data'] },
      );
      try {
        await expect
          .poll(async () => (await execIn(docker, writer, 'cat /data/before')).output)
          .toBe('before\n');
        const snap = await loopvol('snapshot', 'create', 'src', 'first');
        expect(snap.exitCode, snap.stderr).toBe(0);
        expect(snap.stdout).toBe('src@first (copy, taken frozen)');
        const listed = await loopvol('snapshot', 'ls', 'src');
        expect(listed.stdout).toMatch(/^ first\s+\S+\s+copy\s+64M\s+/m);
        await docker.createVolume({ Name: 'fromsnap', Driver: driver, DriverOpts: { from: 'src@first' } });
        const read = await runContainer(docker, 'cat /data/before; test -s /data/log && echo has-log', {
          Binds: ['fromsnap:/data'],
        });
        expect(read).toEqual({ exitCode: 0, output: 'before\n' + 'has-log\n' });
      } finally {
        await writer.remove({ force: true });
      }
      await expect(docker.getVolume('src').remove()).rejects.toThrow(/has snapshots \(first\)/);
      expect((await loopvol('snapshot', 'rm', 'src', 'first')).exitCode).toBe(0);
      await docker.getVolume('src').remove();
      await docker.getVolume('fromsnap').remove();
    });

    it('backs up a volume a container wrote, and restores it through Docker', async () => {
      const { docker, driver } = suite.env;
      await docker.createVolume({ Name: 'saved', Driver: driver, DriverOpts: { size: '64M' } });
      const written = await runContainer(
        docker,
        'dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null; sha256sum /data/blob | cut -d" " -f1',
        { Binds: ['saved:/data'] },
      );
      expect(written.exitCode).toBe(0);
      const backup = await loopvol('backup', 'saved', '--json');
      expect(backup.exitCode, backup.stderr).toBe(0);
      const { id } = JSON.parse(backup.stdout) as { id: string };
      await docker.createVolume({
        Name: 'restored',
        Driver: driver,
        DriverOpts: { from: `backup:${id}`, 'restore-other': 'true' },
      });
      const read = await runContainer(docker, 'sha256sum /data/blob | cut -d" " -f1', {
        Binds: ['restored:/data'],
      });
      expect(read).toEqual({ exitCode: 0, output: written.output });
      const inspected = JSON.parse((await loopvol('inspect', 'saved', '--json')).stdout) as {
        Status: object;
      };
      expect(inspected.Status).toMatchObject({ lastBackup: { id } });
      await docker.getVolume('saved').remove();
      await docker.getVolume('restored').remove();
    });

    it('gc lists, then cleans, what interrupted work left, and nothing else', async () => {
      const root = suite.plugin.dataRoot;
      await mkdir(join(root, 'staging', 'interrupted'), { recursive: true });
      await writeFile(join(root, 'staging', 'interrupted', 'disk.img'), 'partial');
      // A removed volume's image still attached to a loop device (a Remove killed mid-way).
      const orphan = join(root, 'trash', 'killed', 'disk.img');
      await mkdir(join(root, 'trash', 'killed'), { recursive: true });
      await execa('truncate', ['-s', '16M', orphan]);
      const device = (await execa('losetup', ['--find', '--show', orphan])).stdout;
      // Not loopvol's: an image outside the data root, attached too.
      const foreign = join(suite.tmp, 'foreign.img');
      await execa('truncate', ['-s', '16M', foreign]);
      const foreignDevice = (await execa('losetup', ['--find', '--show', foreign])).stdout;
      try {
        const listed = await loopvol('gc', '--dry-run', '--json');
        expect(listed.exitCode, listed.stderr).toBe(0);
        const planned = JSON.parse(listed.stdout) as { kind: string; target: string; action: string }[];
        expect(planned).toEqual(
          expect.arrayContaining([
            expect.objectContaining({ kind: 'loop device', target: device, action: 'would clean' }),
            expect.objectContaining({
              kind: 'staging',
              target: join(root, 'staging', 'interrupted'),
              action: 'would clean',
            }),
            expect.objectContaining({
              kind: 'trash',
              target: join(root, 'trash', 'killed'),
              action: 'would clean',
            }),
          ]),
        );
        expect(planned.some((f) => f.target === foreignDevice)).toBe(false);
        expect((await execa('losetup', ['-j', orphan])).stdout).toContain(device);

        const cleaned = await loopvol('gc');
        expect(cleaned.exitCode, cleaned.stdout).toBe(0);
        expect(cleaned.stdout).toContain(`cleaned: loop device ${device}: serves ${orphan}`);
        expect((await execa('losetup', ['-j', orphan], { reject: false })).stdout).toBe('');
        expect((await execa('losetup', ['-j', foreign])).stdout).toContain(foreignDevice);
        expect((await loopvol('gc')).stdout).toBe('nothing to clean');
      } finally {
        await execa('losetup', ['-d', foreignDevice], { reject: false });
        await execa('losetup', ['-d', device], { reject: false });
      }
    });
  },
);

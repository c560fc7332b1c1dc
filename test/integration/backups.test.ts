import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { fileSpace } from '../../src/system/fsstat.js';
import { BIN, type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const ID = 'b'.repeat(64);

async function ok(p: PluginProcess, method: string, body: object): Promise<Record<string, unknown>> {
  const reply = await p.call(method, body);
  expect(reply.status, `${method}: ${reply.raw}`).toBe(200);
  return reply.body as Record<string, unknown>;
}

/** Bytes a directory tree occupies (the repository's growth). */
const treeBytes = async (dir: string) => Number((await execa('du', ['-sb', dir])).stdout.split('\t')[0]);

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'restic']))(
  'backups to a real restic repository',
  () => {
    const cases = pluginCases();

    /** A repository the operator made (restic init) and a daemon that backs up to it. */
    async function withRepository(label: string, env: Record<string, string> = {}) {
      const dir = await cases.begin(label);
      const repo = join(dir, 'repo');
      const password = join(dir, 'password');
      await writeFile(password, 'correct horse\n', { mode: 0o600 });
      await execa('restic', ['init', '--repo', repo, '--password-file', password]);
      const args = ['--spares', '0', '--backup-repo', repo, '--backup-password-file', password];
      const p = await cases.start({ args, env });
      return { dir, repo, password, args, p };
    }

    it('backs up incrementally and restores each backup sparse, with the same data', async () => {
      const { repo, p } = await withRepository('backup');
      await p.waitForLog(/backup repository ready/);
      await ok(p, 'VolumeDriver.Create', { Name: 'pg', Opts: { size: '256M' } });
      const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'pg', ID })).Mountpoint);
      const first = randomBytes(48 * 1024 * 1024);
      await writeFile(join(mountPoint, 'first'), first);
      const empty = await treeBytes(repo);
      const one = (await ok(p, 'Loopvol.Backup', { Name: 'pg' })).Backup as { id: string };
      const afterOne = await treeBytes(repo);
      const second = randomBytes(2 * 1024 * 1024);
      await writeFile(join(mountPoint, 'second'), second);
      const two = (await ok(p, 'Loopvol.Backup', { Name: 'pg' })).Backup as { id: string };
      const afterTwo = await treeBytes(repo);
      console.log(
        `repository growth: first backup ${(afterOne - empty) >> 20} MiB, second ${(afterTwo - afterOne) >> 20} MiB`,
      );
      // The second adds the new data and what the filesystem rewrote (its journal: up to 8 MiB here).
      expect(afterTwo - afterOne).toBeLessThan((afterOne - empty) / 3);

      const listed = (await ok(p, 'Loopvol.Backups', { Name: 'pg' })).Backups as {
        id: string;
        volume: string;
      }[];
      expect(listed.map((b) => b.id)).toEqual([one.id, two.id]);
      expect(
        ((await ok(p, 'VolumeDriver.Get', { Name: 'pg' })).Volume as { Status: object }).Status,
      ).toMatchObject({
        lastBackup: { id: two.id },
        lastBackupFailure: null,
      });

      // Each backup restored into a new volume holds the data as it was, and is sparse.
      await ok(p, 'VolumeDriver.Create', { Name: 'old', Opts: { from: `backup:${one.id.slice(0, 8)}` } });
      await ok(p, 'VolumeDriver.Create', { Name: 'new', Opts: { from: `backup:${two.id}` } });
      const old = String((await ok(p, 'VolumeDriver.Mount', { Name: 'old', ID })).Mountpoint);
      const now = String((await ok(p, 'VolumeDriver.Mount', { Name: 'new', ID })).Mountpoint);
      expect(sha(await readFile(join(old, 'first')))).toBe(sha(first));
      expect(await readdir(old)).not.toContain('second');
      expect(sha(await readFile(join(now, 'second')))).toBe(sha(second));
      expect(await readdir(now)).not.toContain('lost+found');
      // Sparse: about the 48 MiB of data, far from the volume's 256M.
      expect(fileSpace(join(p.dataRoot, 'volumes', 'old', 'disk.img')).allocatedBytes).toBeLessThan(
        100 * 1024 * 1024,
      );
      const uuid = async (name: string) =>
        (
          await execa('blkid', [
            '-p',
            '-o',
            'value',
            '-s',
            'UUID',
            join(p.dataRoot, 'volumes', name, 'disk.img'),
          ])
        ).stdout;
      expect(await uuid('old')).not.toBe(await uuid('pg'));

      // Unknown backups and names: a clear error, nothing created.
      expect(
        (await p.call('VolumeDriver.Create', { Name: 'nobody', Opts: { from: 'backup' } })).body.Err,
      ).toMatch(/there is no backup of a volume named nobody/);
      expect(
        (await p.call('VolumeDriver.Create', { Name: 'nobody', Opts: { from: 'backup:deadbeef' } })).status,
      ).toBe(404);
      expect(((await ok(p, 'VolumeDriver.List', {})).Volumes as unknown[]).length).toBe(3);
      for (const name of ['pg', 'old', 'new']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
    });

    it('runs scheduled backups (-o backup=INTERVAL) and restores the latest under the same name', async () => {
      const { p } = await withRepository('backup-schedule');
      await ok(p, 'VolumeDriver.Create', { Name: 'kafka', Opts: { size: '64M', backup: '1m' } });
      const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'kafka', ID })).Mountpoint);
      await writeFile(join(mountPoint, 'offsets'), 'committed');
      await expect
        .poll(async () => ((await ok(p, 'Loopvol.Backups', { Name: 'kafka' })).Backups as unknown[]).length, {
          timeout: 30_000,
          interval: 1_000,
        })
        .toBeGreaterThanOrEqual(1);
      await p.waitForLog(/"scheduled":true.*"msg":"volume backed up"/);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'kafka', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'kafka' });
      // As on another agent: the name comes back from its latest backup (here through the CLI).
      const cli = (...args: string[]) =>
        execa(process.execPath, [BIN, ...args, '--socket', p.socket], { reject: false });
      const listed = JSON.parse((await cli('backups', 'kafka', '--json')).stdout) as { volume: string }[];
      expect(listed[0]?.volume).toBe('kafka');
      expect(await cli('restore', 'kafka')).toMatchObject({ exitCode: 0, stdout: 'kafka' });
      expect((await cli('backup', 'kafka')).stdout).toMatch(/^kafka: backup [0-9a-f]{8}$/);
      const restored = String((await ok(p, 'VolumeDriver.Mount', { Name: 'kafka', ID })).Mountpoint);
      expect(await readFile(join(restored, 'offsets'), 'utf8')).toBe('committed');
      await ok(p, 'VolumeDriver.Unmount', { Name: 'kafka', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'kafka' });
    });

    it('a plugin killed during a backup restarts with nothing frozen and nothing half-made', async () => {
      const { args, p: first } = await withRepository('backup-crash');
      await ok(first, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = String((await ok(first, 'VolumeDriver.Mount', { Name: 'vol', ID })).Mountpoint);
      expect(await first.stop()).toBe(0);
      const doomed = await cases.start({ args, env: { LOOPVOL_CRASH_AT: 'snapshot:frozen' } });
      const exited = once(doomed.child, 'exit');
      await expect(doomed.call('Loopvol.Backup', { Name: 'vol' })).rejects.toThrow();
      expect((await exited)[1]).toBe('SIGKILL');
      const restarted = await cases.start({ args });
      await ok(restarted, 'VolumeDriver.List', {});
      await execa('sh', ['-c', `echo thawed > ${join(mountPoint, 'after')}`], { timeout: 10_000 });
      expect(await readdir(join(restarted.dataRoot, 'volumes', 'vol', 'snapshots'))).toEqual([]);
      expect((await ok(restarted, 'Loopvol.Backups', { Name: 'vol' })).Backups).toEqual([]);
      await ok(restarted, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      await ok(restarted, 'VolumeDriver.Remove', { Name: 'vol' });
    });

    it('says so when the password is wrong or the repository is not there, and creates nothing', async () => {
      const { dir, repo } = await withRepository('backup-bad');
      const wrong = join(dir, 'wrong');
      await writeFile(wrong, 'nope\n');
      for (const [repository, password, message] of [
        [repo, wrong, /the password file does not open this repository/],
        [join(dir, 'missing'), wrong, /no repository there/],
      ] as const) {
        const p = await cases.start({
          socket: join(dir, `${randomBytes(4).toString('hex')}.sock`),
          args: ['--spares', '0', '--backup-repo', repository, '--backup-password-file', password],
        });
        await p.waitForLog(/backup repository unusable/);
        await ok(p, 'VolumeDriver.Create', { Name: 'data', Opts: { size: '64M' } });
        expect((await p.call('Loopvol.Backup', { Name: 'data' })).body.Err).toMatch(message);
        expect(
          (await p.call('VolumeDriver.Create', { Name: 'again', Opts: { from: 'backup' } })).body.Err,
        ).toMatch(message);
        expect((await ok(p, 'VolumeDriver.List', {})).Volumes).toEqual([{ Name: 'data', Mountpoint: '' }]);
        await ok(p, 'VolumeDriver.Remove', { Name: 'data' });
        expect(await p.stop()).toBe(0);
      }
    });

    it('never shows the credentials of a repository URL, in its log or in errors', async () => {
      const dir = await cases.begin('backup-credentials');
      const password = join(dir, 'password');
      await writeFile(password, 'correct horse\n', { mode: 0o600 });
      // Nothing listens on port 1: restic fails at once, with the URL in its message.
      const repository = 'rest:http://alice:s3cr3t-PASS@127.0.0.1:1/repo';
      const p = await cases.start({
        args: ['--spares', '0', '--backup-repo', repository, '--backup-password-file', password],
      });
      await p.waitForLog(/backup repository unusable/);
      await ok(p, 'VolumeDriver.Create', { Name: 'data', Opts: { size: '64M' } });
      const cli = await execa(process.execPath, [BIN, 'backup', 'data', '--socket', p.socket], {
        reject: false,
      });
      expect(cli.exitCode).not.toBe(0);
      expect(cli.stderr).toMatch(/cannot back volume data up: restic backup failed/);
      const restore = await p.call('VolumeDriver.Create', { Name: 'again', Opts: { from: 'backup' } });
      expect(restore.status).not.toBe(200);
      await p.waitForLog(/backup failed/);
      const seen = [p.logs(), cli.stdout, cli.stderr, restore.raw].join('\n');
      expect(seen).toContain('rest:http://alice:***@127.0.0.1:1/repo');
      expect(seen).not.toContain('s3cr3t');
      await ok(p, 'VolumeDriver.Remove', { Name: 'data' });
    });
  },
);

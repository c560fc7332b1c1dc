import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SCHEDULED_KEEP } from '../../src/backup/backups.js';
import { fileSpace } from '../../src/system/fsstat.js';
import { createAndMount, ok, sha } from '../helpers/calls.js';
import { freePort } from '../helpers/net.js';
import { BIN, type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { backUpImage } from '../helpers/restic.js';
import { initRepository } from '../helpers/restic-repo.js';
import { storageAvailable } from '../helpers/tools.js';

const ID = 'b'.repeat(64);

/** Create then Mount: the mountpoint. */
const mount = (p: PluginProcess, name: string, opts: object = { size: '64M' }) =>
  createAndMount(p, name, opts, ID);

/** Bytes a directory tree occupies (the repository's growth). */
const treeBytes = async (dir: string) => Number((await execa('du', ['-sb', dir])).stdout.split('\t')[0]);

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'restic']))(
  'backups to a real restic repository',
  () => {
    const cases = pluginCases();

    /** A repository the operator made (restic init) and a daemon that backs up to it. */
    async function withRepository(label: string, env: Record<string, string> = {}, more: string[] = []) {
      const dir = await cases.begin(label);
      const repo = join(dir, 'repo');
      const password = join(dir, 'password');
      await writeFile(password, 'correct horse\n', { mode: 0o600 });
      await initRepository(repo, password);
      // restore-other is privileged: these tests restore other names' backups.
      const args = [
        ...['--spares', '0', '--backup-repo', repo, '--backup-password-file', password],
        ...['--allow-options', 'default,restore-other', ...more],
      ];
      const p = await cases.start({ args, env });
      /** restic itself on the repository, as an operator (or another agent) would run it. */
      const restic = (...command: string[]) =>
        execa('restic', ['--repo', repo, '--password-file', password, '--no-cache', ...command]);
      return { dir, repo, password, args, p, restic };
    }

    type Listed = { id: string; volume: string; generation: number; time: string };
    const backupsOf = async (p: PluginProcess, name?: string) =>
      (await ok(p, 'Loopvol.Backups', name ? { Name: name } : {})).Backups as Listed[];
    const statusOf = async (p: PluginProcess, name: string) =>
      ((await ok(p, 'VolumeDriver.Get', { Name: name })).Volume as { Status: Record<string, unknown> })
        .Status;

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
      // The reply is built without listing (the full id from the repository's directory): it says
      // what the listing says, its time being when restic started by the daemon's clock.
      const { time: listedTime, ...listedRest } = listed[1] as Listed;
      const { time: replyTime, ...replyRest } = two as unknown as Listed;
      expect(replyRest).toEqual(listedRest);
      expect(Math.abs(Date.parse(replyTime) - Date.parse(listedTime))).toBeLessThan(5_000);
      expect(
        ((await ok(p, 'VolumeDriver.Get', { Name: 'pg' })).Volume as { Status: object }).Status,
      ).toMatchObject({
        lastBackup: { id: two.id },
        lastBackupFailure: null,
      });

      // Each backup restored into a new volume holds the data as it was, and is sparse.
      const other = { 'restore-other': 'true' };
      await ok(p, 'VolumeDriver.Create', {
        Name: 'old',
        Opts: { from: `backup:${one.id.slice(0, 8)}`, ...other },
      });
      await ok(p, 'VolumeDriver.Create', { Name: 'new', Opts: { from: `backup:${two.id}`, ...other } });
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
      const doomed = await cases.start({ args, env: { LOOPVOL_CRASH_AT: 'backup:frozen' } });
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
      expect(await p.stop()).toBe(0);
    });

    it("retention and restores follow generations; another name's backup needs restore-other", async () => {
      const { p, restic } = await withRepository('backup-generations', {}, ['--backup-keep', '1']);
      const pg = await mount(p, 'pg');
      await writeFile(join(pg, 'marker'), 'owner generation 1');
      const first = (await ok(p, 'Loopvol.Backup', { Name: 'pg' })).Backup as Listed;
      expect(first.generation).toBe(0);
      // As if another agent had taken pg over in generation 1 and made this backup: this daemon
      // (generation 0, no cluster) is now the stale copy.
      await restic('tag', '--remove', 'gen=0', '--add', 'gen=1', first.id);
      const mq = await mount(p, 'mq');
      await writeFile(join(mq, 'marker'), 'another volume');
      const other = (await ok(p, 'Loopvol.Backup', { Name: 'mq' })).Backup as Listed;
      await writeFile(join(pg, 'marker'), 'stale copy, later in time');
      await ok(p, 'Loopvol.Backup', { Name: 'pg' });
      const newest = (await ok(p, 'Loopvol.Backup', { Name: 'pg' })).Backup as Listed;

      // Keep 1: the stale copy pruned its own older backup only; generation 1's and mq's stay.
      const listed = await backupsOf(p);
      expect(listed.map((b) => [b.volume, b.generation]).sort()).toEqual([
        ['mq', 0],
        ['pg', 0],
        ['pg', 1],
      ]);
      expect(listed.find((b) => b.volume === 'mq')?.id).toBe(other.id);
      expect(listed.find((b) => b.generation === 0 && b.volume === 'pg')?.id).toBe(newest.id);
      const table = await execa(process.execPath, [BIN, 'backups', 'pg', '--socket', p.socket]);
      expect(table.stdout).toMatch(/^\s*ID\s+TIME\s+VOLUME\s+GEN\s+FS/m);

      // from=backup restores generation 1's backup, though generation 0's is newer in time.
      for (const name of ['pg', 'mq']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
      const restored = await mount(p, 'pg', { from: 'backup' });
      expect(await readFile(join(restored, 'marker'), 'utf8')).toBe('owner generation 1');

      // mq's backup under another name: refused unless asked for by name.
      const refused = await p.call('VolumeDriver.Create', {
        Name: 'copy',
        Opts: { from: `backup:${other.id.slice(0, 8)}` },
      });
      expect(refused.status).toBe(400);
      expect(refused.body.Err).toMatch(/is of volume mq, not copy: add -o restore-other=true/);
      expect(((await ok(p, 'VolumeDriver.List', {})).Volumes as unknown[]).length).toBe(1);
      const copy = await mount(p, 'copy', { from: `backup:${other.id}`, 'restore-other': 'true' });
      expect(await readFile(join(copy, 'marker'), 'utf8')).toBe('another volume');
      for (const name of ['pg', 'copy']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
    });

    it('backup verify restores the latest backup into a scratch image and reports damage', async () => {
      const { p, repo, password } = await withRepository('backup-verify');
      const cli = (...args: string[]) =>
        execa(process.execPath, [BIN, ...args, '--socket', p.socket], { reject: false });
      const mountPoint = await mount(p, 'vol');
      await writeFile(join(mountPoint, 'data'), randomBytes(4 * 1024 * 1024));
      const made = (await ok(p, 'Loopvol.Backup', { Name: 'vol' })).Backup as Listed;
      const good = await cli('backup', 'verify', 'vol');
      expect(good.exitCode, good.stderr).toBe(0);
      expect(good.stdout).toMatch(new RegExp(`^vol: backup ${made.id.slice(0, 8)} of .* in [0-9.]+s: ok$`));
      expect(await statusOf(p, 'vol')).toMatchObject({ lastBackupVerify: { backup: made.id, ok: true } });
      expect(await readdir(join(p.dataRoot, 'staging'))).toEqual([]);

      // A damaged filesystem is not backed up: its files cannot be read (the mount is refused).
      await ok(p, 'VolumeDriver.Create', { Name: 'bad', Opts: { size: '64M' } });
      const badImage = join(p.dataRoot, 'volumes', 'bad', 'disk.img');
      await execa('debugfs', ['-w', '-R', 'clri <2>', badImage]);
      const refused = await p.call('Loopvol.Backup', { Name: 'bad' });
      expect(refused.status).toBe(500);
      expect(refused.body.Err).toMatch(/cannot back volume bad up: .*needs cleaning/);
      // One made as a whole image (before file backups) of that damaged filesystem: the check finds it.
      const tags = ['loopvol', 'volume=bad', 'fs=ext4', `size=${64 * 1024 * 1024}`, 'gen=0'];
      await backUpImage({ repo, password }, badImage, 'bad', tags);
      const damaged = (await ok(p, 'Loopvol.BackupVerify', { Name: 'bad' })).Verify as {
        ok: boolean;
        problems: string[];
      };
      expect(damaged.ok).toBe(false);
      expect(damaged.problems.join('\n')).toMatch(/e2fsck .* exited \d+[\s\S]*Root inode is not a directory/);
      const cliBad = await cli('backup', 'verify', 'bad');
      expect(cliBad.exitCode).toBe(1);
      expect(cliBad.stdout).toMatch(/: DAMAGED\n/);

      // The repository's data damaged: the restore fails, said so, and nothing is left behind.
      for (const sub of await readdir(join(repo, 'data'))) {
        for (const pack of await readdir(join(repo, 'data', sub))) {
          const file = join(repo, 'data', sub, pack);
          const bytes = await readFile(file);
          bytes.fill(0, 64, bytes.length - 64);
          await writeFile(file, bytes);
        }
      }
      const broken = (await ok(p, 'Loopvol.BackupVerify', { Name: 'vol' })).Verify as {
        ok: boolean;
        problems: string[];
      };
      expect(broken).toMatchObject({ ok: false, problems: [expect.stringMatching(/cannot restore backup/)] });
      expect(await statusOf(p, 'vol')).toMatchObject({
        lastBackupVerify: { backup: made.id, ok: false, problem: expect.stringMatching(/cannot restore/) },
      });
      expect(await readdir(join(p.dataRoot, 'staging'))).toEqual([]);
      expect((await p.call('Loopvol.BackupVerify', { Name: 'nobody' })).status).toBe(404);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'vol', ID });
    });

    it('scheduled backups keep the newest 24 by default, and scheduled checks show in Status and metrics', async () => {
      const port = await freePort();
      const { p, restic } = await withRepository('backup-verify-schedule', {}, [
        '--metrics-listen',
        `127.0.0.1:${port}`,
      ]);
      // Backups of kafka from before: the default retention prunes them to DEFAULT_SCHEDULED_KEEP.
      const input = join(p.dataRoot, '..', 'tiny');
      await writeFile(input, 'x');
      for (let i = 0; i < DEFAULT_SCHEDULED_KEEP; i++) {
        await restic('backup', '--tag', 'loopvol,volume=kafka,gen=0,fs=ext4', input);
      }
      const oldest = (await backupsOf(p, 'kafka'))[0]?.id;
      await ok(p, 'VolumeDriver.Create', {
        Name: 'kafka',
        Opts: { size: '64M', backup: '1d', 'backup-verify': '1m' },
      });
      await expect
        .poll(async () => (await statusOf(p, 'kafka')).lastBackupVerify, { timeout: 60_000, interval: 1_000 })
        .toMatchObject({ ok: true });
      await p.waitForLog(/"scheduled":true.*"msg":"backup verified/);
      const kept = await backupsOf(p, 'kafka');
      expect(kept.length).toBe(DEFAULT_SCHEDULED_KEEP);
      expect(kept.map((b) => b.id)).not.toContain(oldest);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^loopvol_backup_verify_last_success_timestamp_seconds\{volume="kafka"\} \d+/m);
      expect(metrics).toMatch(/^loopvol_backup_verify_failed\{volume="kafka"\} 0$/m);
      await ok(p, 'VolumeDriver.Remove', { Name: 'kafka' });
    });
  },
);

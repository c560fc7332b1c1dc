import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  chmod,
  chown,
  link,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { kernelStateUnder } from '../helpers/kernel.js';
import { type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { backUpImage, backupArgs, logLines, makeRepository } from '../helpers/restic.js';
import { storageAvailable } from '../helpers/tools.js';

const ID = 'f'.repeat(64);

/** The fields of a 'files backed up' log line. */
type Backed = {
  via: 'live' | 'copy';
  filesChanged: number;
  filesNew: number;
  filesUnmodified: number;
  dataAdded: number;
  readBytes: number;
};
const MiB = 1024 * 1024;
/** Files of 100 MiB of zeros on the volume a live backup reads. */
const ZEROS = 21;
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function ok(p: PluginProcess, method: string, body: object): Promise<Record<string, unknown>> {
  const reply = await p.call(method, body);
  expect(reply.status, `${method}: ${reply.raw}`).toBe(200);
  return reply.body as Record<string, unknown>;
}

const mountOf = async (p: PluginProcess, name: string) =>
  String((await ok(p, 'VolumeDriver.Mount', { Name: name, ID })).Mountpoint);
const backUp = async (p: PluginProcess, name: string) =>
  (await ok(p, 'Loopvol.Backup', { Name: name })).Backup as { id: string; format: string };

const python = (code: string, ...args: string[]) => execa('python3', ['-c', code, ...args]);
const setXattr = (path: string, value: string) =>
  python('import os,sys; os.setxattr(sys.argv[1], "user.loopvol", sys.argv[2].encode())', path, value);
const getXattrs = async (path: string) =>
  (await python('import os,sys; print(sorted(os.listxattr(sys.argv[1])))', path)).stdout;

/** Everything a restore must bring back of a tree, by path (allocation compared on its own). */
async function describeTree(root: string): Promise<Record<string, object>> {
  const out: Record<string, object> = {};
  const inodes = new Map<number, string>();
  const walk = async (rel: string) => {
    const path = join(root, rel);
    const st = await lstat(path);
    const base = { mode: st.mode.toString(8), uid: st.uid, gid: st.gid, nlink: st.nlink };
    if (st.isSymbolicLink()) out[rel] = { ...base, target: await readlink(path) };
    else if (st.isDirectory()) {
      out[rel] = { ...base, xattrs: await getXattrs(path) };
      for (const name of (await readdir(path)).sort()) await walk(join(rel, name));
    } else {
      // A hard link is described as the path it shares an inode with.
      const first = inodes.get(st.ino);
      inodes.set(st.ino, first ?? rel);
      out[rel] = {
        ...base,
        size: st.size,
        linkOf: first,
        sha: sha(await readFile(path)),
        xattrs: await getXattrs(path),
      };
    }
  };
  await walk('.');
  return out;
}

/** Files of every kind a container leaves in a volume. */
async function populate(dir: string): Promise<void> {
  await chown(dir, 999, 998);
  await chmod(dir, 0o750);
  for (const n of [1, 2, 3, 4]) await writeFile(join(dir, `data-${n}`), randomBytes(16 * MiB));
  await mkdir(join(dir, 'etc'), { mode: 0o700 });
  await writeFile(join(dir, 'etc', 'conf'), 'owner and mode\n', { mode: 0o640 });
  await chown(join(dir, 'etc', 'conf'), 1234, 5678);
  await chown(join(dir, 'etc'), 1234, 5678);
  await writeFile(join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o4755 });
  await symlink('etc/conf', join(dir, 'link'));
  await link(join(dir, 'etc', 'conf'), join(dir, 'hard'));
  await setXattr(join(dir, 'etc', 'conf'), 'kept');
  await setXattr(dir, 'root too');
  await mkdir(join(dir, 'empty'));
  // Sparse: 64 MiB long, 4 KiB of data in the middle.
  await writeFile(join(dir, 'sparse'), '');
  await execa('truncate', ['-s', '64M', join(dir, 'sparse')]);
  await execa('dd', [
    `of=${join(dir, 'sparse')}`,
    'bs=4096',
    'seek=8192',
    'count=1',
    'conv=notrunc',
    'if=/dev/urandom',
  ]);
}

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'restic', 'python3']))(
  "backups of a volume's files",
  () => {
    const cases = pluginCases();

    it.each(['ext4', 'xfs'])(
      '%s: an incremental backup reads what changed, and a restore brings every kind of file back',
      async (fs) => {
        const dir = await cases.begin(`files-${fs}`);
        const { p } = await startTrusted(cases, dir);
        await ok(p, 'VolumeDriver.Create', { Name: 'src', Opts: { size: '320M', fs } });
        const source = await mountOf(p, 'src');
        await populate(source);
        const first = await backUp(p, 'src');
        expect(first.format).toBe('files');
        await writeFile(join(source, 'data-2'), randomBytes(16 * MiB));
        const second = await backUp(p, 'src');

        const [one, two] = logLines(p, 'files backed up') as Backed[];
        expect(one).toMatchObject({ filesChanged: 0 });
        expect(one?.filesNew).toBeGreaterThanOrEqual(8);
        // restic took this host's previous backup of the volume as the parent: 1 file read, none new.
        expect(two).toMatchObject({ filesChanged: 1, filesNew: 0 });
        expect(two?.filesUnmodified).toBeGreaterThanOrEqual(7);
        // The rewritten 16 MiB: not the 64 MiB of files that stayed as they were.
        expect(two?.dataAdded).toBeGreaterThanOrEqual(16 * MiB);
        expect(two?.dataAdded).toBeLessThan(20 * MiB);
        // Nothing of the backups stays attached or mounted: only the volume itself.
        expect(await kernelStateUnder(p.dataRoot)).toMatchObject({
          mounts: [source],
          loops: [expect.any(String)],
        });

        await ok(p, 'VolumeDriver.Create', {
          Name: 'copy',
          Opts: { from: `backup:${second.id}`, 'restore-other': 'true' },
        });
        const restored = await mountOf(p, 'copy');
        expect(await describeTree(restored)).toEqual(await describeTree(source));
        expect((await lstat(join(restored, 'sparse'))).blocks * 512).toBeLessThan(MiB);
        for (const name of ['src', 'copy']) {
          await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
          await ok(p, 'VolumeDriver.Remove', { Name: name });
        }
      },
    );

    it('backs a mounted volume up where it is when a copy would freeze it past --max-freeze, and mixes with copies', async () => {
      const dir = await cases.begin('files-live');
      const bin = await resticWrapper(dir);
      const path = { PATH: `${bin}:${process.env.PATH}` };
      const { p, repo, password } = await startTrusted(cases, dir, path, ['--max-freeze', '5']);
      // 2.1 GiB: over what a block copy may move in --max-freeze 5 s (2 GiB; without reflinks, a
      // snapshot is refused), while restic reads what changed in well under that.
      await ok(p, 'VolumeDriver.Create', { Name: 'big', Opts: { size: '4G', fs: 'ext4' } });
      let mountPoint = await mountOf(p, 'big');
      for (let n = 0; n < ZEROS; n++)
        await writeFile(join(mountPoint, `zeros-${n}`), Buffer.alloc(100 * MiB));
      await writeFile(join(mountPoint, 'hot'), randomBytes(16 * MiB));
      // Unmounted, the first backup reads a copy of the image, frozen by nobody.
      await ok(p, 'VolumeDriver.Unmount', { Name: 'big', ID });
      await backUp(p, 'big');
      mountPoint = await mountOf(p, 'big');
      const hot = randomBytes(16 * MiB);
      await writeFile(join(mountPoint, 'hot'), hot);
      // restic starts late (inside the freeze): a write meanwhile waits for the thaw, and gc for the lock.
      await writeFile(join(dir, 'slow1'), '');
      const backup = p.call('Loopvol.Backup', { Name: 'big' });
      const bind = join(p.dataRoot, '.backup', 'read', 'big');
      await expect
        .poll(async () => (await kernelStateUnder(p.dataRoot)).mounts, { timeout: 10_000 })
        .toContain(bind);
      const writer = writeFile(join(mountPoint, 'late'), 'written during the backup');
      const gc = p.call('Loopvol.Gc', { DryRun: false });
      const reply = await backup;
      expect(reply.status, reply.raw).toBe(200);
      await writer;
      expect((await gc).status).toBe(200);
      await rm(join(dir, 'slow1'));
      const live = (reply.body as { Backup: { id: string } }).Backup.id;
      const listed = await execa('restic', ['--repo', repo, '--password-file', password, 'ls', live]);
      expect(listed.stdout).toContain('/big/hot');
      expect(listed.stdout).not.toContain('/big/late');
      expect(await readFile(join(mountPoint, 'late'), 'utf8')).toBe('written during the backup');

      // And back to a copy: its parent is the live backup.
      await writeFile(join(mountPoint, 'zeros-0'), randomBytes(16 * MiB));
      await ok(p, 'VolumeDriver.Unmount', { Name: 'big', ID });
      await backUp(p, 'big');
      const [first, second, third] = logLines(p, 'files backed up') as Backed[];
      expect(first).toMatchObject({ via: 'copy', filesNew: ZEROS + 1 });
      // Only the rewritten file is read, from the live filesystem and from the copy.
      expect(second).toMatchObject({ via: 'live', filesChanged: 1, filesNew: 0, filesUnmodified: ZEROS });
      expect(second?.dataAdded).toBeLessThan(20 * MiB);
      expect(third).toMatchObject({ via: 'copy', filesChanged: 1, filesNew: 1, filesUnmodified: ZEROS });
      expect(third?.readBytes).toBeLessThan(64 * MiB);
      expect(logLines(p, 'backing the volume up from a copy instead')).toEqual([]);
      expect(await kernelStateUnder(p.dataRoot)).toEqual({ mounts: [], loops: [] });

      await ok(p, 'VolumeDriver.Create', {
        Name: 'back',
        Opts: { from: `backup:${live}`, 'restore-other': 'true' },
      });
      const restored = await mountOf(p, 'back');
      expect(sha(await readFile(join(restored, 'hot')))).toBe(sha(hot));
      const names = ['hot', ...Array.from({ length: ZEROS }, (_, n) => `zeros-${n}`)];
      expect((await readdir(restored)).sort()).toEqual(names.sort());
      await ok(p, 'VolumeDriver.Unmount', { Name: 'back', ID });
      for (const name of ['big', 'back']) await ok(p, 'VolumeDriver.Remove', { Name: name });
    });

    it('backs a copy up when restic would keep the volume frozen past --max-freeze', async () => {
      const dir = await cases.begin('files-fallback');
      const bin = await resticWrapper(dir);
      const made = await makeRepository(dir);
      const p = await cases.start({
        args: [...trustedArgs(made), '--max-freeze', '1'],
        env: { PATH: `${bin}:${process.env.PATH}` },
      });
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = await mountOf(p, 'vol');
      await writeFile(join(mountPoint, 'data'), 'kept');
      await writeFile(join(dir, 'slow'), '');
      const { id } = await backUp(p, 'vol');
      expect(logLines(p, 'backing the volume up from a copy instead')).toEqual([
        expect.objectContaining({ volume: 'vol', reason: expect.stringMatching(/within --max-freeze/) }),
      ]);
      expect(logLines(p, 'files backed up')).toEqual([expect.objectContaining({ via: 'copy', filesNew: 1 })]);
      // Thawed, and nothing of the attempt is left: a freeze succeeds again, and so does a write.
      await execa('fsfreeze', ['-f', mountPoint]);
      await execa('fsfreeze', ['-u', mountPoint]);
      await writeFile(join(mountPoint, 'after'), 'writable');
      expect(await kernelStateUnder(p.dataRoot)).toMatchObject({ mounts: [mountPoint] });
      await ok(p, 'VolumeDriver.Create', {
        Name: 'back',
        Opts: { from: `backup:${id}`, 'restore-other': 'true' },
      });
      expect(await readFile(join(await mountOf(p, 'back'), 'data'), 'utf8')).toBe('kept');
      for (const name of ['vol', 'back']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
    });

    it('still restores whole-image backups, and refuses one larger than its recorded size', async () => {
      const dir = await cases.begin('files-legacy');
      const { repo, password, p } = await startTrusted(cases, dir);
      // An image as loopvol backed it up before: one file, /<name>.img, and no format tag.
      await mkdir(join(dir, 'content'));
      await writeFile(join(dir, 'content', 'old'), 'from the image days\n');
      const image = join(dir, 'legacy.img');
      await execa('truncate', ['-s', '64M', image]);
      await execa('mkfs.ext4', ['-q', '-d', join(dir, 'content'), image]);
      for (const [name, size] of [
        ['legacy', 64 * MiB],
        ['liar', 32 * MiB],
      ] as const) {
        await backUpImage({ repo, password }, image, name, [
          'loopvol',
          `volume=${name}`,
          'fs=ext4',
          `size=${size}`,
        ]);
      }
      expect(((await ok(p, 'Loopvol.Backups', { Name: 'legacy' })).Backups as object[])[0]).toMatchObject({
        format: 'image',
      });
      await ok(p, 'VolumeDriver.Create', { Name: 'legacy', Opts: { from: 'backup' } });
      expect(await readFile(join(await mountOf(p, 'legacy'), 'old'), 'utf8')).toBe('from the image days\n');

      const refused = await p.call('VolumeDriver.Create', { Name: 'liar', Opts: { from: 'backup' } });
      expect(refused.body.Err).toMatch(/larger than its recorded size/);
      expect(
        ((await ok(p, 'VolumeDriver.List', {})).Volumes as { Name: string }[]).map((v) => v.Name),
      ).toEqual(['legacy']);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'legacy', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'legacy' });
    });

    it('restores only the volume of a files backup that holds more, nothing outside its image', async () => {
      const dir = await cases.begin('files-foreign');
      const { repo, password, p } = await startTrusted(cases, dir);
      // A files backup whose snapshot also holds a second top-level tree (a hand-made or hostile one).
      const base = join(dir, 'base');
      await mkdir(join(base, 'vol'), { recursive: true });
      await mkdir(join(base, 'elsewhere'));
      await writeFile(join(base, 'vol', 'mine'), 'the volume\n');
      await writeFile(join(base, 'elsewhere', 'planted'), 'not the volume\n');
      const tags = ['loopvol', 'volume=vol', 'fs=ext4', `size=${64 * MiB}`, 'format=files', 'gen=0'];
      await execa(
        'restic',
        ['--repo', repo, '--password-file', password, 'backup', 'vol', 'elsewhere', '--tag', tags.join(',')],
        { cwd: base },
      );
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { from: 'backup' } });
      const mounted = await mountOf(p, 'vol');
      expect(await readFile(join(mounted, 'mine'), 'utf8')).toBe('the volume\n');
      const found = await execa('find', [p.dataRoot, '-name', 'planted']);
      expect(found.stdout).toBe('');
      await ok(p, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'vol' });
    });

    it('leaves no loop device or mount when restic fails during a backup or a restore', async () => {
      const dir = await cases.begin('files-fail');
      const bin = await resticWrapper(dir);
      const { p } = await startTrusted(cases, dir, { PATH: `${bin}:${process.env.PATH}` });
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = await mountOf(p, 'vol');
      await writeFile(join(mountPoint, 'data'), 'kept');
      await backUp(p, 'vol');
      await writeFile(join(dir, 'fail'), '');
      expect((await p.call('Loopvol.Backup', { Name: 'vol' })).body.Err).toMatch(/injected failure/);
      const fromVol = await p.call('VolumeDriver.Create', {
        Name: 'vol-copy',
        Opts: { from: `backup:${(await backUpList(p))[0]}`, 'restore-other': 'true' },
      });
      expect(fromVol.body.Err).toMatch(/cannot restore backup .*injected failure/);
      expect(await kernelStateUnder(p.dataRoot)).toMatchObject({
        mounts: [mountPoint],
        loops: [expect.any(String)],
      });
      expect(((await ok(p, 'VolumeDriver.List', {})).Volumes as object[]).length).toBe(1);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      await ok(p, 'VolumeDriver.Remove', { Name: 'vol' });
    });

    it('gc while a backup or a restore has its copy mounted leaves it alone', async () => {
      const dir = await cases.begin('files-gc');
      const bin = await resticWrapper(dir);
      const { p } = await startTrusted(cases, dir, { PATH: `${bin}:${process.env.PATH}` });
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = await mountOf(p, 'vol');
      await writeFile(join(mountPoint, 'data'), 'kept');
      // Unmounted, a backup reads a copy (a mounted volume's backup holds its lock: gc waits for it).
      await ok(p, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      await backUp(p, 'vol');
      await writeFile(join(dir, 'slow'), '');
      const requests = [
        p.call('Loopvol.Backup', { Name: 'vol' }),
        p.call('VolumeDriver.Create', {
          Name: 'back',
          Opts: { from: `backup:${(await backUpList(p))[0]}`, 'restore-other': 'true' },
        }),
      ];
      await expect
        .poll(async () => (await kernelStateUnder(p.dataRoot)).mounts.length, { timeout: 10_000 })
        .toBe(2);
      const findings = (await ok(p, 'Loopvol.Gc', { DryRun: false })).Findings as {
        action: string;
        reason: string;
      }[];
      expect(
        findings.filter((f) => f.action === 'kept' && /in progress has mounted/.test(f.reason)),
      ).toHaveLength(2);
      for (const reply of await Promise.all(requests)) expect(reply.status, reply.raw).toBe(200);
      expect(await readFile(join(await mountOf(p, 'back'), 'data'), 'utf8')).toBe('kept');
      await mountOf(p, 'vol');
      for (const name of ['vol', 'back']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
    });

    it.each([
      ['backup:mounted', 'live', 2],
      ['backup:frozen', 'live', 1],
      ['backup:mounted', 'copy', 1],
      ['restore:mounted', 'copy', 2],
    ] as const)(
      'a plugin killed at %s (%s) leaves mounts that start-up removes, and no frozen volume',
      async (step, via, left) => {
        const dir = await cases.begin('files-crash');
        const made = await makeRepository(dir);
        const args = trustedArgs(made);
        const first = await cases.start({ args });
        await ok(first, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
        const mountPoint = await mountOf(first, 'vol');
        await backUp(first, 'vol');
        // A mounted volume is backed up live (frozen, through a bind), an unmounted one from a copy.
        if (step === 'backup:mounted' && via === 'copy')
          await ok(first, 'VolumeDriver.Unmount', { Name: 'vol', ID });
        expect(await first.stop()).toBe(0);
        const doomed = await cases.start({ args, env: { LOOPVOL_CRASH_AT: step } });
        const exited = once(doomed.child, 'exit');
        const request = step.startsWith('backup')
          ? doomed.call('Loopvol.Backup', { Name: 'vol' })
          : doomed.call('VolumeDriver.Create', {
              Name: 'back',
              Opts: { from: `backup:${(await backUpList(doomed))[0]}`, 'restore-other': 'true' },
            });
        await expect(request).rejects.toThrow();
        expect((await exited)[1]).toBe('SIGKILL');
        expect((await kernelStateUnder(doomed.dataRoot)).mounts.length).toBe(left);
        const restarted = await cases.start({ args });
        // Requests wait for start-up, which thaws.
        await ok(restarted, 'VolumeDriver.List', {});
        const mounted = via === 'live' || step === 'restore:mounted';
        await expect
          .poll(() => kernelStateUnder(restarted.dataRoot), { timeout: 10_000 })
          .toMatchObject(
            mounted ? { mounts: [mountPoint], loops: [expect.any(String)] } : { mounts: [], loops: [] },
          );
        if (mounted) {
          // Thawed: a freeze succeeds (it fails with EBUSY on a frozen filesystem), and so does a write.
          await execa('fsfreeze', ['-f', mountPoint]);
          await execa('fsfreeze', ['-u', mountPoint]);
          await writeFile(join(mountPoint, 'after'), 'writable');
        }
        // And the next backup works at the same place.
        await backUp(restarted, 'vol');
        if (mounted) await ok(restarted, 'VolumeDriver.Unmount', { Name: 'vol', ID });
        await ok(restarted, 'VolumeDriver.Remove', { Name: 'vol' });
      },
    );
  },
);

/**
 * A restic for the daemon's PATH that, while the file `fail` exists in `dir`, fails its backups
 * and restores, and while `slow` (`slow1`) exists, starts them 3 s (0.5 s) late; otherwise it is restic.
 */
async function resticWrapper(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const restic = (await execa('sh', ['-c', 'command -v restic'])).stdout;
  const script = `#!/bin/sh
case " $* " in *" backup "*|*" restore "*)
  if [ -e ${dir}/fail ]; then echo "injected failure" >&2; exit 1; fi
  if [ -e ${dir}/slow ]; then sleep 3; fi
  if [ -e ${dir}/slow1 ]; then sleep 0.5; fi;;
esac
exec ${restic} "$@"
`;
  await writeFile(join(bin, 'restic'), script, { mode: 0o755 });
  return bin;
}

/** restore-other is privileged: these tests restore other names' backups. */
const trustedArgs = (made: { repo: string; password: string }) => [
  ...backupArgs(made),
  '--allow-options',
  'default,restore-other',
];

/** A daemon of `cases` backing up to a new repository in `dir` (see trustedArgs). */
async function startTrusted(
  cases: ReturnType<typeof pluginCases>,
  dir: string,
  env: Record<string, string> = {},
  more: string[] = [],
) {
  const made = await makeRepository(dir);
  return { ...made, p: await cases.start({ args: [...trustedArgs(made), ...more], env }) };
}

const backUpList = async (p: PluginProcess) =>
  ((await ok(p, 'Loopvol.Backups', { Name: 'vol' })).Backups as { id: string }[]).map((b) => b.id);

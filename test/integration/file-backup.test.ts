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
  symlink,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { kernelStateUnder } from '../helpers/kernel.js';
import { type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { backupArgs, logLines, makeRepository, startWithRepository } from '../helpers/restic.js';
import { storageAvailable } from '../helpers/tools.js';

const ID = 'f'.repeat(64);
const MiB = 1024 * 1024;
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
        const { p } = await startWithRepository(cases, dir);
        await ok(p, 'VolumeDriver.Create', { Name: 'src', Opts: { size: '320M', fs } });
        const source = await mountOf(p, 'src');
        await populate(source);
        const first = await backUp(p, 'src');
        expect(first.format).toBe('files');
        await writeFile(join(source, 'data-2'), randomBytes(16 * MiB));
        const second = await backUp(p, 'src');

        const [one, two] = logLines(p, 'files backed up') as {
          filesChanged: number;
          filesNew: number;
          filesUnmodified: number;
          dataAdded: number;
          readBytes: number;
        }[];
        console.log(`${fs}: first backup read ${one?.readBytes} bytes, second ${two?.readBytes}`);
        expect(one?.readBytes).toBeGreaterThanOrEqual(64 * MiB);
        // restic took this host's previous backup of the volume as the parent: 1 file read, none new.
        expect(two).toMatchObject({ filesChanged: 1, filesNew: 0 });
        expect(two?.filesUnmodified).toBeGreaterThanOrEqual(7);
        // The rewritten 16 MiB and metadata: not the 64 MiB of files that stayed as they were.
        expect(two?.readBytes).toBeLessThan(32 * MiB);
        expect(two?.dataAdded).toBeGreaterThanOrEqual(16 * MiB);
        expect(two?.dataAdded).toBeLessThan(20 * MiB);
        // Nothing of the backups stays attached or mounted: only the volume itself.
        expect(await kernelStateUnder(p.dataRoot)).toMatchObject({
          mounts: [source],
          loops: [expect.any(String)],
        });

        await ok(p, 'VolumeDriver.Create', { Name: 'copy', Opts: { from: `backup:${second.id}` } });
        const restored = await mountOf(p, 'copy');
        expect(await describeTree(restored)).toEqual(await describeTree(source));
        expect((await lstat(join(restored, 'sparse'))).blocks * 512).toBeLessThan(MiB);
        for (const name of ['src', 'copy']) {
          await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
          await ok(p, 'VolumeDriver.Remove', { Name: name });
        }
      },
    );

    it('still restores whole-image backups, and refuses one larger than its recorded size', async () => {
      const dir = await cases.begin('files-legacy');
      const { repo, password, p } = await startWithRepository(cases, dir);
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
        const tags = ['loopvol', `volume=${name}`, 'fs=ext4', `size=${size}`].flatMap((t) => ['--tag', t]);
        await execa(
          'restic',
          [
            '--repo',
            repo,
            '--password-file',
            password,
            'backup',
            '--stdin',
            '--stdin-filename',
            `/${name}.img`,
            ...tags,
          ],
          {
            inputFile: image,
          },
        );
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

    it('leaves no loop device or mount when restic fails during a backup or a restore', async () => {
      const dir = await cases.begin('files-fail');
      const bin = await resticWrapper(dir);
      const { p } = await startWithRepository(cases, dir, { PATH: `${bin}:${process.env.PATH}` });
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = await mountOf(p, 'vol');
      await writeFile(join(mountPoint, 'data'), 'kept');
      await backUp(p, 'vol');
      await writeFile(join(dir, 'fail'), '');
      expect((await p.call('Loopvol.Backup', { Name: 'vol' })).body.Err).toMatch(/injected failure/);
      const fromVol = await p.call('VolumeDriver.Create', {
        Name: 'vol-copy',
        Opts: { from: `backup:${(await backUpList(p))[0]}` },
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
      const { p } = await startWithRepository(cases, dir, { PATH: `${bin}:${process.env.PATH}` });
      await ok(p, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = await mountOf(p, 'vol');
      await writeFile(join(mountPoint, 'data'), 'kept');
      await backUp(p, 'vol');
      await writeFile(join(dir, 'slow'), '');
      const requests = [
        p.call('Loopvol.Backup', { Name: 'vol' }),
        p.call('VolumeDriver.Create', { Name: 'back', Opts: { from: `backup:${(await backUpList(p))[0]}` } }),
      ];
      await expect
        .poll(async () => (await kernelStateUnder(p.dataRoot)).mounts.length, { timeout: 10_000 })
        .toBe(3);
      const findings = (await ok(p, 'Loopvol.Gc', { DryRun: false })).Findings as {
        action: string;
        reason: string;
      }[];
      expect(
        findings.filter((f) => f.action === 'kept' && /in progress has mounted/.test(f.reason)),
      ).toHaveLength(2);
      for (const reply of await Promise.all(requests)) expect(reply.status, reply.raw).toBe(200);
      expect(await readFile(join(await mountOf(p, 'back'), 'data'), 'utf8')).toBe('kept');
      for (const name of ['vol', 'back']) {
        await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
        await ok(p, 'VolumeDriver.Remove', { Name: name });
      }
    });

    it.each(['backup:mounted', 'restore:mounted'])(
      'a plugin killed at %s leaves a mount that start-up removes',
      async (step) => {
        const dir = await cases.begin('files-crash');
        const made = await makeRepository(dir);
        const args = backupArgs(made);
        const first = await cases.start({ args });
        await ok(first, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
        const mountPoint = await mountOf(first, 'vol');
        await backUp(first, 'vol');
        expect(await first.stop()).toBe(0);
        const doomed = await cases.start({ args, env: { LOOPVOL_CRASH_AT: step } });
        const exited = once(doomed.child, 'exit');
        const request =
          step === 'backup:mounted'
            ? doomed.call('Loopvol.Backup', { Name: 'vol' })
            : doomed.call('VolumeDriver.Create', {
                Name: 'back',
                Opts: { from: `backup:${(await backUpList(doomed))[0]}` },
              });
        await expect(request).rejects.toThrow();
        expect((await exited)[1]).toBe('SIGKILL');
        expect((await kernelStateUnder(doomed.dataRoot)).mounts.length).toBe(2);
        const restarted = await cases.start({ args });
        await expect
          .poll(() => kernelStateUnder(restarted.dataRoot), { timeout: 10_000 })
          .toMatchObject({ mounts: [mountPoint], loops: [expect.any(String)] });
        // And the next backup works at the same place.
        await backUp(restarted, 'vol');
        await ok(restarted, 'VolumeDriver.Unmount', { Name: 'vol', ID });
        await ok(restarted, 'VolumeDriver.Remove', { Name: 'vol' });
      },
    );
  },
);

/**
 * A restic for the daemon's PATH that, while the file `fail` exists in `dir`, fails its backups
 * and restores, and while `slow` exists, starts them 3 s late; otherwise it is restic.
 */
async function resticWrapper(dir: string): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin);
  const restic = (await execa('sh', ['-c', 'command -v restic'])).stdout;
  const script = `#!/bin/sh
case " $* " in *" backup "*|*" restore "*)
  if [ -e ${dir}/fail ]; then echo "injected failure" >&2; exit 1; fi
  if [ -e ${dir}/slow ]; then sleep 3; fi;;
esac
exec ${restic} "$@"
`;
  await writeFile(join(bin, 'restic'), script, { mode: 0o755 });
  return bin;
}

const backUpList = async (p: PluginProcess) =>
  ((await ok(p, 'Loopvol.Backups', { Name: 'vol' })).Backups as { id: string }[]).map((b) => b.id);

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { SNAPSHOT_CRASH_STEPS } from '../../src/core/faults.js';
import { filesystemUsage } from '../../src/system/fsstat.js';
import { attachLoop } from '../../src/system/losetup.js';
import { makeFilesystem } from '../../src/system/mkfs.js';
import { mountDevice, unmount } from '../../src/system/mount.js';
import { ok, sha } from '../helpers/calls.js';
import { pluginCases, type StartOptions } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;

const ID = 'h'.repeat(64);

/** An xfs filesystem (reflink on, as mkfs.xfs makes it) of `mib` MiB mounted at <dir>/<name>. */
async function xfsFilesystem(dir: string, name: string, mib: number): Promise<string> {
  const image = join(dir, `${name}.img`);
  await execa('truncate', ['-s', `${mib}M`, image]);
  await makeFilesystem(image, 'xfs', 'sparse-image');
  const mountPoint = join(dir, name);
  await mkdir(mountPoint);
  await mountDevice(await attachLoop(image, { directIo: true }), mountPoint, 'xfs', []);
  return mountPoint;
}

describe.runIf(
  storageAvailable(['losetup', 'mkfs.ext4', 'mkfs.xfs', 'mount', 'e2fsck', 'xfs_admin', 'tune2fs']),
)('snapshots and clones on the real kernel', () => {
  const cases = pluginCases();
  const plugin = (options: StartOptions = {}) =>
    cases.start({ ...options, args: ['--spares', '0', ...(options.args ?? [])] });

  it('snapshots a volume while it is written: clean, holding exactly what was there before; clones it', async () => {
    await cases.begin('snap-ext4');
    const p = await plugin();
    await ok(p, 'VolumeDriver.Create', { Name: 'pg', Opts: { size: '256M' } });
    const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'pg', ID })).Mountpoint);
    const before = randomBytes(8 * 1024 * 1024);
    await writeFile(join(mountPoint, 'before'), before);
    // A writer that keeps going across the snapshot: the freeze holds it, the thaw releases it.
    const writer = execa('sh', ['-c', 'i=0; while [ $i -lt 400 ]; do echo $i >> log; i=$((i+1)); done'], {
      cwd: mountPoint,
    });
    const snap = await ok(p, 'Loopvol.SnapshotCreate', { Name: 'pg', Snapshot: 'one' });
    await writer;
    await writeFile(join(mountPoint, 'after'), 'later');
    expect(snap.Snapshot).toMatchObject({ name: 'one', method: 'copy', frozen: true, fs: 'ext4' });
    const snapImage = join(p.dataRoot, 'volumes', 'pg', 'snapshots', 'one', 'disk.img');
    // Mounts cleanly: e2fsck finds nothing to fix (exit 0 with -n).
    expect((await execa('e2fsck', ['-f', '-n', snapImage], { reject: false })).exitCode).toBe(0);
    // The sparse copy keeps holes: it occupies about what the data does, not the 256M.
    const allocated = (snap.Snapshot as { allocatedBytes: number }).allocatedBytes;
    expect(allocated).toBeLessThan(64 * 1024 * 1024);
    expect((await ok(p, 'VolumeDriver.Get', { Name: 'pg' })).Volume).toMatchObject({
      Status: { snapshots: ['one'] },
    });

    // A clone of the snapshot mounts beside its source: the data as it was, and nothing after.
    await ok(p, 'VolumeDriver.Create', { Name: 'copy', Opts: { from: 'pg@one', size: '512M' } });
    const cloned = String((await ok(p, 'VolumeDriver.Mount', { Name: 'copy', ID })).Mountpoint);
    expect(sha(await readFile(join(cloned, 'before')))).toBe(sha(before));
    expect(await readdir(cloned)).not.toContain('after');
    expect(filesystemUsage(cloned).totalBytes).toBeGreaterThan(400 * 1024 * 1024);
    const uuid = (image: string) => execa('blkid', ['-p', '-o', 'value', '-s', 'UUID', image]);
    expect((await uuid(join(p.dataRoot, 'volumes', 'copy', 'disk.img'))).stdout).not.toBe(
      (await uuid(join(p.dataRoot, 'volumes', 'pg', 'disk.img'))).stdout,
    );

    // dvdcli (as the Mesos isolator runs it) creates a clone with --volumeopts; it finds the daemon's
    // socket, plugin.sock, by the driver name "plugin".
    const dvdcli = (...args: string[]) =>
      execa(process.execPath, [DVDCLI, ...args, '--volumedriver=plugin', '--volumename=bydvdcli'], {
        env: { LOOPVOL_PLUGIN_SOCKETS_DIR: dirname(p.socket) },
      });
    const viaDvdcli = (await dvdcli('mount', '--volumeopts=from=pg@one')).stdout;
    expect(sha(await readFile(join(viaDvdcli, 'before')))).toBe(sha(before));
    await dvdcli('unmount');
    await ok(p, 'VolumeDriver.Remove', { Name: 'bydvdcli' });

    // The source cannot be removed while it has snapshots; bad names and sources change nothing.
    await ok(p, 'VolumeDriver.Unmount', { Name: 'pg', ID });
    const refused = await p.call('VolumeDriver.Remove', { Name: 'pg' });
    expect(refused.body.Err).toMatch(
      /has snapshots \(one\): remove them first with "loopvol snapshot rm pg SNAP"/,
    );
    expect((await p.call('Loopvol.SnapshotRemove', { Name: 'pg', Snapshot: 'nope' })).status).toBe(404);
    expect(
      (await p.call('VolumeDriver.Create', { Name: 'ghost', Opts: { from: 'missing' } })).body.Err,
    ).toMatch(/cannot create volume ghost: volume missing does not exist/);
    expect(
      (await p.call('VolumeDriver.Create', { Name: 'ghost', Opts: { from: 'pg@nope' } })).body.Err,
    ).toMatch(/volume pg has no snapshot nope/);
    expect((await ok(p, 'VolumeDriver.List', {})).Volumes).toHaveLength(2);
    expect((await p.call('Loopvol.SnapshotCreate', { Name: 'pg', Snapshot: '../x' })).status).toBe(400);
    await ok(p, 'Loopvol.SnapshotRemove', { Name: 'pg', Snapshot: 'one' });
    await ok(p, 'VolumeDriver.Unmount', { Name: 'copy', ID });
    await ok(p, 'VolumeDriver.Remove', { Name: 'copy' });
    await ok(p, 'VolumeDriver.Remove', { Name: 'pg' });
    expect(await p.stop()).toBe(0);
  });

  it('on an xfs data root a snapshot is a reflink; a clone of a mounted xfs volume mounts beside it', async () => {
    const dir = await cases.begin('snap-xfs');
    const root = await xfsFilesystem(dir, 'xfsroot', 1536);
    const p = await plugin({ dataRoot: join(root, 'loopvol') });
    await ok(p, 'VolumeDriver.Create', { Name: 'db', Opts: { size: '400M', fs: 'xfs' } });
    const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'db', ID })).Mountpoint);
    await writeFile(join(mountPoint, 'data'), randomBytes(32 * 1024 * 1024));
    // A first snapshot's freeze puts the data in the image; the second then measures a snapshot alone.
    await ok(p, 'Loopvol.SnapshotCreate', { Name: 'db', Snapshot: 'warm' });
    const usedBefore = filesystemUsage(root).usedBytes;
    const started = Date.now();
    const snap = await ok(p, 'Loopvol.SnapshotCreate', { Name: 'db', Snapshot: 'sx' });
    console.log(`xfs reflink snapshot of a 400M volume with 32M of data: ${Date.now() - started} ms`);
    expect(snap.Snapshot).toMatchObject({ method: 'reflink', frozen: true });
    // Shared blocks: the data root's use barely moves.
    const grown = filesystemUsage(root).usedBytes - usedBefore;
    console.log(`the data root grew by ${(grown / 1024).toFixed(0)} KiB for that snapshot`);
    expect(grown).toBeLessThan(4 * 1024 * 1024);

    await ok(p, 'VolumeDriver.Create', { Name: 'dbclone', Opts: { from: 'db' } });
    const cloned = String((await ok(p, 'VolumeDriver.Mount', { Name: 'dbclone', ID })).Mountpoint);
    await writeFile(join(cloned, 'data'), 'changed in the clone');
    expect((await readFile(join(mountPoint, 'data'))).length).toBe(32 * 1024 * 1024);
    for (const name of ['db', 'dbclone']) await ok(p, 'VolumeDriver.Unmount', { Name: name, ID });
    // The source's image now shares blocks with its snapshot (4 KiB direct I/O): it still mounts.
    const again = String((await ok(p, 'VolumeDriver.Mount', { Name: 'db', ID })).Mountpoint);
    expect((await readFile(join(again, 'data'))).length).toBe(32 * 1024 * 1024);
    await ok(p, 'VolumeDriver.Unmount', { Name: 'db', ID });
    for (const snapshot of ['warm', 'sx'])
      await ok(p, 'Loopvol.SnapshotRemove', { Name: 'db', Snapshot: snapshot });
    for (const name of ['db', 'dbclone']) await ok(p, 'VolumeDriver.Remove', { Name: name });
    expect(await p.stop()).toBe(0);
  });

  it('refuses a block copy of a mounted volume that would freeze it past --max-freeze, unless forced', async () => {
    await cases.begin('snap-freeze');
    const p = await plugin({ args: ['--max-freeze', '0.001'] });
    await ok(p, 'VolumeDriver.Create', { Name: 'busy', Opts: { size: '128M' } });
    const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'busy', ID })).Mountpoint);
    await writeFile(join(mountPoint, 'data'), randomBytes(16 * 1024 * 1024));
    const refused = await p.call('Loopvol.SnapshotCreate', { Name: 'busy', Snapshot: 'slow' });
    expect(refused.status).toBe(409);
    expect(refused.body.Err).toMatch(
      /while it is frozen, about .* s, over --max-freeze 0\.0 s: .*force it \(--force\)/,
    );
    expect((await ok(p, 'Loopvol.SnapshotList', { Name: 'busy' })).Snapshots).toEqual([]);
    const forced = await ok(p, 'Loopvol.SnapshotCreate', { Name: 'busy', Snapshot: 'slow', Force: true });
    expect(forced.Snapshot).toMatchObject({ name: 'slow', method: 'copy', frozen: true });
    await ok(p, 'Loopvol.SnapshotRemove', { Name: 'busy', Snapshot: 'slow' });
    await ok(p, 'VolumeDriver.Unmount', { Name: 'busy', ID });
    await ok(p, 'VolumeDriver.Remove', { Name: 'busy' });
  });

  it('refuses to freeze what is at the mountpoint once the volume was unmounted from outside', async () => {
    const dir = await cases.begin('snap-outside');
    const p = await plugin();
    await ok(p, 'VolumeDriver.Create', { Name: 'gone', Opts: { size: '64M' } });
    const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'gone', ID })).Mountpoint);
    const { loopDevice } = (
      (await ok(p, 'VolumeDriver.Get', { Name: 'gone' })).Volume as {
        Status: { loopDevice: string };
      }
    ).Status;
    // Unmounted behind the daemon's back; another filesystem, standing in for the host's, shows at
    // the path by the time the snapshot opens it (the race between the check and the freeze).
    await unmount(mountPoint);
    const other = join(dir, 'other.img');
    await execa('truncate', ['-s', '64M', other]);
    await makeFilesystem(other, 'ext4', 'sparse-image');
    await mountDevice(await attachLoop(other, { directIo: false }), mountPoint, 'ext4', []);

    const refused = await p.call('Loopvol.SnapshotCreate', { Name: 'gone', Snapshot: 'snap' });
    expect(refused.status, refused.raw).toBe(409);
    expect(refused.body.Err).toBe(
      `cannot copy volume gone: ${mountPoint} is not on ${loopDevice} (unmounted from outside?): not freezing what is there instead; restart loopvol (it reconciles what it serves with the kernel), then retry`,
    );
    // The other filesystem is not frozen: a freeze of our own is accepted (a frozen one answers
    // EBUSY), and undone at once.
    await execa('fsfreeze', ['-f', mountPoint]);
    await execa('fsfreeze', ['-u', mountPoint]);
    expect((await ok(p, 'Loopvol.SnapshotList', { Name: 'gone' })).Snapshots).toEqual([]);
    await unmount(mountPoint);
  });

  it.each(SNAPSHOT_CRASH_STEPS)(
    'a plugin killed at %s restarts with nothing frozen and no half-made snapshot',
    async (step) => {
      await cases.begin('snap-crash');
      const doomed = await plugin({ env: { LOOPVOL_CRASH_AT: step } });
      await ok(doomed, 'VolumeDriver.Create', { Name: 'vol', Opts: { size: '64M' } });
      const mountPoint = String((await ok(doomed, 'VolumeDriver.Mount', { Name: 'vol', ID })).Mountpoint);
      await writeFile(join(mountPoint, 'kept'), 'kept');
      const exited = once(doomed.child, 'exit');
      await expect(doomed.call('Loopvol.SnapshotCreate', { Name: 'vol', Snapshot: 'xx' })).rejects.toThrow();
      expect((await exited)[1]).toBe('SIGKILL');

      const restarted = await plugin();
      await ok(restarted, 'VolumeDriver.List', {});
      // Writable again: a frozen filesystem would block this write.
      await execa('sh', ['-c', `echo thawed > ${join(mountPoint, 'after')}`], { timeout: 10_000 });
      expect((await ok(restarted, 'Loopvol.SnapshotList', { Name: 'vol' })).Snapshots).toEqual([]);
      expect(await readdir(join(restarted.dataRoot, 'volumes', 'vol', 'snapshots'))).toEqual([]);
      await ok(restarted, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      expect((await ok(restarted, 'VolumeDriver.Mount', { Name: 'vol', ID })).Mountpoint).toBe(mountPoint);
      expect(await readFile(join(mountPoint, 'kept'), 'utf8')).toBe('kept');
      await ok(restarted, 'VolumeDriver.Unmount', { Name: 'vol', ID });
      await ok(restarted, 'VolumeDriver.Remove', { Name: 'vol' });
    },
  );
});

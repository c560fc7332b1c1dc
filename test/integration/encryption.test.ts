import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { deriveVolumeKey, keyIdentifier } from '../../src/encryption/keys.js';
import { unlocked } from '../../src/encryption/unlock.js';
import { parseRecord } from '../../src/state/record.js';
import { addKey, removeKey } from '../../src/system/fscrypt.js';
import { ok } from '../helpers/calls.js';
import { freePort } from '../helpers/net.js';
import { type PluginProcess, pluginCases } from '../helpers/plugin.js';
import { makeRepository } from '../helpers/restic.js';
import { storageAvailable } from '../helpers/tools.js';

const DVDCLI = new URL('../../bin/dvdcli', import.meta.url).pathname;
const ID = 'e'.repeat(64);
const OTHER = 'f'.repeat(64);

/** A master key file as the operator makes it: random bytes, root's, 0600. */
async function keyFile(dir: string, name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, randomBytes(64), { mode: 0o600 });
  return path;
}

/** Whether `marker` occurs anywhere in the file's bytes (grep -c over the raw image). */
async function holds(file: string, marker: string): Promise<boolean> {
  return (await execa('grep', ['-c', '-a', '-F', marker, file], { reject: false })).exitCode === 0;
}

const image = (p: PluginProcess, name: string) => join(p.dataRoot, 'volumes', name, 'disk.img');
const record = async (p: PluginProcess, name: string) =>
  parseRecord(await readFile(join(p.dataRoot, 'volumes', name, 'volume.json'), 'utf8'));

describe.runIf(storageAvailable(['losetup', 'mkfs.ext4', 'mount', 'e2fsck', 'tune2fs']))(
  'encrypted volumes on the real kernel (fscrypt)',
  () => {
    const cases = pluginCases();
    const start = (key: string | undefined, dataRoot?: string) =>
      cases.start({
        args: ['--spares', '0', ...(key ? ['--key-file', key] : [])],
        ...(dataRoot ? { dataRoot, socket: `${dataRoot}.sock` } : {}),
      });

    it('keeps the contents and names out of the image and snapshot; reads back after a restart; a clone opens with the same key', async () => {
      const dir = await cases.begin('enc-life');
      const key = await keyFile(dir, 'master.key');
      let p = await start(key);
      await ok(p, 'VolumeDriver.Create', {
        Name: 'sec',
        Opts: { encrypt: 'true', size: '64M', uid: '1000', mode: '0750' },
      });
      const mountPoint = String((await ok(p, 'VolumeDriver.Mount', { Name: 'sec', ID })).Mountpoint);
      expect(mountPoint).toBe(join(p.dataRoot, 'volumes', 'sec', 'mnt', 'data'));
      const marker = `MARKER-${randomBytes(8).toString('hex')}`;
      await writeFile(join(mountPoint, `${marker}.txt`), `${marker}\n`.repeat(1000));
      const got = (await ok(p, 'VolumeDriver.Get', { Name: 'sec' })).Volume as {
        Status: Record<string, unknown>;
      };
      expect(got.Status).toMatchObject({ encrypted: true, uid: 1000, mode: '0750' });
      await ok(p, 'Loopvol.SnapshotCreate', { Name: 'sec', Snapshot: 's1' });
      const snapImage = join(p.dataRoot, 'volumes', 'sec', 'snapshots', 's1', 'disk.img');
      expect(await holds(snapImage, 'MARKER-')).toBe(false);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'sec', ID });
      expect(await holds(image(p, 'sec'), 'MARKER-')).toBe(false);
      // Only the key's UUID and identifier are stored, never the key.
      const stored = await record(p, 'sec');
      expect(stored.encryption?.keyId).toBe(
        keyIdentifier(deriveVolumeKey(await readFile(key), stored.encryption?.keyUuid ?? '')),
      );

      await p.stop();
      p = await start(key);
      const again = String((await ok(p, 'VolumeDriver.Mount', { Name: 'sec', ID })).Mountpoint);
      expect(await readFile(join(again, `${marker}.txt`), 'utf8')).toBe(`${marker}\n`.repeat(1000));
      await ok(p, 'VolumeDriver.Unmount', { Name: 'sec', ID });

      for (const from of ['sec', 'sec@s1']) {
        const clone = `c${from.length}`;
        await ok(p, 'VolumeDriver.Create', { Name: clone, Opts: { from } });
        expect((await record(p, clone)).encryption).toEqual(stored.encryption);
        const at = String((await ok(p, 'VolumeDriver.Mount', { Name: clone, ID })).Mountpoint);
        expect(await readdir(at)).toEqual([`${marker}.txt`]);
        await ok(p, 'VolumeDriver.Unmount', { Name: clone, ID });
        expect(await holds(image(p, clone), 'MARKER-')).toBe(false);
      }
    });

    it('refuses a Mount without the key or with another, and removes the key at the last Unmount', async () => {
      const dir = await cases.begin('enc-keys');
      const key = await keyFile(dir, 'master.key');
      let p = await start(key);
      await ok(p, 'VolumeDriver.Create', { Name: 'sec', Opts: { encrypt: 'true', size: '64M' } });
      const at = String((await ok(p, 'VolumeDriver.Mount', { Name: 'sec', ID })).Mountpoint);
      await writeFile(join(at, 'secret'), 'plain');
      await ok(p, 'VolumeDriver.Mount', { Name: 'sec', ID: OTHER });
      const encryption = (await record(p, 'sec')).encryption;
      if (!encryption) throw new Error('volume sec is not recorded as encrypted');
      const mnt = join(p.dataRoot, 'volumes', 'sec', 'mnt');
      await ok(p, 'VolumeDriver.Unmount', { Name: 'sec', ID: OTHER });
      expect(await unlocked(mnt, encryption)).toBe('present');
      // A container's copy of the mount keeps the filesystem alive after loopvol's unmount.
      const copy = join(dir, 'copy');
      await mkdir(copy);
      await execa('mount', ['--bind', mnt, copy]);
      try {
        await ok(p, 'VolumeDriver.Unmount', { Name: 'sec', ID });
        expect(await unlocked(copy, encryption)).toBe('absent');
        // Without the key, the names are ciphertext and the contents cannot be read.
        const names = await readdir(join(copy, 'data'));
        expect(names).toHaveLength(1);
        expect(names[0]).not.toBe('secret');
        await expect(readFile(join(copy, 'data', names[0] ?? ''))).rejects.toThrow();
      } finally {
        await execa('umount', [copy]);
      }

      await p.stop();
      p = await start(await keyFile(dir, 'other.key'));
      const wrong = await p.call('VolumeDriver.Mount', { Name: 'sec', ID });
      expect(wrong.status).not.toBe(200);
      expect(wrong.raw).toMatch(/encrypted with another master key.*key file the volume was created with/);
      expect((await ok(p, 'VolumeDriver.Get', { Name: 'sec' })).Volume).toMatchObject({ Mountpoint: '' });
      await p.stop();
      p = await start(undefined);
      const none = await p.call('VolumeDriver.Mount', { Name: 'sec', ID });
      expect(none.raw).toMatch(/encrypted and this daemon has no master key: start it with the --key-file/);
      const refused = await p.call('VolumeDriver.Create', { Name: 'new', Opts: { encrypt: 'true' } });
      expect(refused.raw).toMatch(/no master key: start it with --key-file/);
    });

    it.runIf(storageAvailable(['restic']))(
      'backs the image up (the marker is absent from restic dump), restored on a second agent with the master key',
      async () => {
        const dir = await cases.begin('enc-backup');
        const key = await keyFile(dir, 'master.key');
        const { repo, password } = await makeRepository(dir);
        const backup = ['--backup-repo', repo, '--backup-password-file', password];
        const agent = (root: string, withKey: string) =>
          cases.start({
            args: ['--spares', '0', '--key-file', withKey, ...backup],
            dataRoot: join(dir, root),
            socket: join(dir, `${root}.sock`),
          });
        const one = await agent('one', key);
        await ok(one, 'VolumeDriver.Create', { Name: 'sec', Opts: { encrypt: 'true', size: '64M' } });
        const at = String((await ok(one, 'VolumeDriver.Mount', { Name: 'sec', ID })).Mountpoint);
        const marker = `MARKER-${randomBytes(8).toString('hex')}`;
        await writeFile(join(at, `${marker}.txt`), marker);
        // Backed up while mounted: from a copy, as its image.
        const made = (await ok(one, 'Loopvol.Backup', { Name: 'sec' })).Backup as {
          id: string;
          format: string;
        };
        expect(made.format).toBe('image');
        await ok(one, 'VolumeDriver.Unmount', { Name: 'sec', ID });
        const dumped = await execa(
          'restic',
          ['--repo', repo, '--password-file', password, '--no-cache', 'dump', made.id, '/sec.img'],
          { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
        );
        expect(dumped.stdout.length).toBeGreaterThan(1024 * 1024);
        expect(Buffer.from(dumped.stdout).includes('MARKER-')).toBe(false);

        // A second agent (its own data root) with the same master key restores and reads it.
        const two = await agent('two', key);
        await ok(two, 'VolumeDriver.Create', { Name: 'sec', Opts: { from: 'backup' } });
        expect((await record(two, 'sec')).encryption).toEqual((await record(one, 'sec')).encryption);
        const back = String((await ok(two, 'VolumeDriver.Mount', { Name: 'sec', ID })).Mountpoint);
        expect(await readFile(join(back, `${marker}.txt`), 'utf8')).toBe(marker);
        await ok(two, 'VolumeDriver.Unmount', { Name: 'sec', ID });
        // One with another key restores the image, but cannot mount it.
        const three = await agent('three', await keyFile(dir, 'other.key'));
        await ok(three, 'VolumeDriver.Create', { Name: 'sec', Opts: { from: 'backup' } });
        const refused = await three.call('VolumeDriver.Mount', { Name: 'sec', ID });
        expect(refused.raw).toMatch(/encrypted with another master key/);
      },
    );

    it('works through dvdcli, and a read-only encrypted volume serves its directory', async () => {
      const dir = await cases.begin('enc-dvdcli');
      const p = await start(await keyFile(dir, 'master.key'));
      const dvdcli = (...args: string[]) =>
        execa(process.execPath, [DVDCLI, ...args, '--volumedriver=plugin', '--volumename=bydvdcli'], {
          env: { LOOPVOL_PLUGIN_SOCKETS_DIR: dirname(p.socket) },
        });
      const at = (await dvdcli('mount', '--volumeopts=encrypt=true', '--volumeopts=size=64M')).stdout.trim();
      expect(at).toBe(join(p.dataRoot, 'volumes', 'bydvdcli', 'mnt', 'data'));
      await writeFile(join(at, 'secret'), 'MARKER-dvdcli');
      await dvdcli('unmount');
      expect(await holds(image(p, 'bydvdcli'), 'MARKER-')).toBe(false);

      await ok(p, 'VolumeDriver.Create', {
        Name: 'ro',
        Opts: { encrypt: 'true', size: '64M', mountopts: 'ro' },
      });
      const ro = String((await ok(p, 'VolumeDriver.Mount', { Name: 'ro', ID })).Mountpoint);
      expect(await readdir(ro)).toEqual([]);
      await expect(writeFile(join(ro, 'x'), 'x')).rejects.toThrow(/EROFS/);
      await ok(p, 'VolumeDriver.Unmount', { Name: 'ro', ID });
    });

    it('refuses xfs, and a key file others can read', async () => {
      const dir = await cases.begin('enc-refuse');
      const key = await keyFile(dir, 'master.key');
      const p = await start(key);
      const xfs = await p.call('VolumeDriver.Create', {
        Name: 'xv',
        Opts: { encrypt: 'true', fs: 'xfs', size: '300M' },
      });
      expect(xfs.raw).toMatch(/encryption is for ext4 only/);
      await p.stop();
      await chmod(key, 0o644);
      await expect(start(key)).rejects.toThrow(/mode 0644: others could read the key; chmod 0600 it/);
    });

    it('metrics say which volumes are encrypted', async () => {
      const dir = await cases.begin('enc-metrics');
      const port = await freePort();
      const p = await cases.start({
        args: [
          '--spares',
          '0',
          '--key-file',
          await keyFile(dir, 'master.key'),
          '--metrics-listen',
          `127.0.0.1:${port}`,
        ],
      });
      await ok(p, 'VolumeDriver.Create', { Name: 'secret', Opts: { encrypt: 'true', size: '32M' } });
      await ok(p, 'VolumeDriver.Create', { Name: 'open', Opts: { size: '32M' } });
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/^loopvol_volume_encrypted\{volume="secret"\} 1$/m);
      expect(text).toMatch(/^loopvol_volume_encrypted\{volume="open"\} 0$/m);
      expect(text).toMatch(/^loopvol_volumes_encrypted 1$/m);
    });

    it('gives the identifier the kernel gives (the ioctls agree with the local derivation)', async () => {
      const dir = await cases.begin('enc-ioctl');
      const p = await start(await keyFile(dir, 'master.key'));
      await ok(p, 'VolumeDriver.Create', { Name: 'plain', Opts: {} });
      await p.stop();
      // A plain filesystem has no encrypt feature: the kernel refuses the key there.
      const key = deriveVolumeKey(randomBytes(32), 'u');
      const mnt = join(dir, 'mnt');
      await mkdir(mnt);
      await execa('mkfs.ext4', ['-q', '-O', 'encrypt', join(dir, 'fs.img'), '32M']);
      await execa('mount', ['-o', 'loop', join(dir, 'fs.img'), mnt]);
      try {
        const id = await addKey(mnt, Buffer.from(key));
        expect(id.toString('hex')).toBe(keyIdentifier(key));
        await removeKey(mnt, id);
      } finally {
        await execa('umount', [mnt]);
      }
    });
  },
);

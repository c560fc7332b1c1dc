import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askDaemon } from '../../src/cli/daemon-client.js';
import { callLoopvol, type PluginAddress, PluginError } from '../../src/protocol/client.js';
import { createApp } from '../../src/protocol/routes.js';
import { endpoints, type GcFinding, type Method, type RequestOf } from '../../src/protocol/wire.js';
import { closeUnix, listenUnix } from '../../src/server/unix-socket.js';
import { BACKUP, fakeDriver, fakeMaintenance, SNAPSHOT } from '../helpers/fake-driver.js';
import { silentLog } from '../helpers/int-log.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';
import { call } from '../helpers/plugin.js';

/** One valid request a method; typed by the table, so a new endpoint without one fails tsc. */
const REQUESTS: { [M in Method]: RequestOf<M> } = {
  'Plugin.Activate': {},
  'VolumeDriver.Capabilities': {},
  'VolumeDriver.Create': { Name: 'ab', Opts: { size: '1G' } },
  'VolumeDriver.Remove': { Name: 'ab' },
  'VolumeDriver.Mount': { Name: 'ab', ID: 'x1' },
  'VolumeDriver.Unmount': { Name: 'ab', ID: 'x1' },
  'VolumeDriver.Path': { Name: 'ab' },
  'VolumeDriver.Get': { Name: 'ab' },
  'VolumeDriver.List': {},
  'Loopvol.Resize': { Name: 'ab', Size: '2G' },
  'Loopvol.Fsck': { Name: 'ab' },
  'Loopvol.Gc': { DryRun: true },
  'Loopvol.SnapshotCreate': { Name: 'ab', Snapshot: 's1' },
  'Loopvol.SnapshotList': { Name: 'ab' },
  'Loopvol.SnapshotRemove': { Name: 'ab', Snapshot: 's1' },
  'Loopvol.Backup': { Name: 'ab' },
  'Loopvol.BackupVerify': { Name: 'ab' },
  'Loopvol.Backups': {},
  'Loopvol.Cluster': {},
};

const methods = Object.keys(REQUESTS) as Method[];

describe('wire replies', () => {
  let dir: string;
  let socket: string;
  let address: PluginAddress;
  let server: Server;

  beforeAll(async () => {
    dir = await makeTempDir('wire');
    socket = join(dir, 'plugin.sock');
    address = { kind: 'unix', path: socket };
    // Lists with one entry each, so every item schema is exercised too.
    const maintenance = {
      ...fakeMaintenance([]),
      gc: async (): Promise<GcFinding[]> => [
        { kind: 'trash', target: '/data/.trash/x', action: 'would clean', reason: 'left by a Remove' },
      ],
      snapshots: async () => [SNAPSHOT],
      backups: async () => [BACKUP],
      clusterVolumes: async () => [{ name: 'ab', owner: 'h1', ownerAlive: true }],
    };
    server = createServer(createApp(fakeDriver().driver, silentLog, { maintenance }));
    await listenUnix(server, socket);
  });

  afterAll(async () => {
    if (server) await closeUnix(server, socket, 0);
    if (dir) await cleanupTempDir(dir);
  });

  it('serves every endpoint of the table, and nothing the table lacks', async () => {
    const unknown = await call(socket, 'Made.Up', {});
    expect(
      String(unknown.body.Err)
        .replace(/^.*loopvol implements /, '')
        .split(', ')
        .sort(),
    ).toEqual([...methods].sort());
    expect(Object.keys(endpoints).sort()).toEqual([...methods].sort());
  });

  it.each(methods)('%s: the reply schema accepts what the route sends', async (method) => {
    const reply = await call(socket, method, REQUESTS[method]);
    expect(reply.status).toBe(200);
    const parsed = endpoints[method].reply.safeParse(reply.body);
    expect(parsed.error).toBeUndefined();
    // The typed client takes it as it came.
    expect(await callLoopvol(address, method, REQUESTS[method], 5_000)).toEqual(reply.body);
  });

  describe('from a daemon answering something else', () => {
    let odd: Server;
    const oddSocket = () => join(dir, 'odd.sock');
    let answer: unknown;

    beforeAll(async () => {
      // Answers every POST with `answer`, as a daemon of another version might.
      odd = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
      await listenUnix(odd, oddSocket());
    });

    afterAll(async () => {
      if (odd) await closeUnix(odd, oddSocket(), 0);
    });

    const ask = (method: Method) =>
      callLoopvol({ kind: 'unix', path: oddSocket() }, method, REQUESTS[method], 5_000);

    it('refuses a malformed reply, naming the endpoint and the field', async () => {
      answer = { Volume: { Name: 'ab', Mountpoint: '' } };
      const refused = ask('VolumeDriver.Get');
      await expect(refused).rejects.toBeInstanceOf(PluginError);
      await expect(refused).rejects.toThrow(
        /^VolumeDriver\.Get: the daemon's answer is not what this loopvol expects \(Volume\.CreatedAt: .*\): is the daemon another version\?/,
      );
      answer = { Snapshots: [{ ...SNAPSHOT, sizeBytes: '1G' }] };
      await expect(ask('Loopvol.SnapshotList')).rejects.toThrow(
        /^Loopvol\.SnapshotList: .*\(Snapshots\.0\.sizeBytes: .*number/,
      );
      answer = {};
      await expect(ask('Loopvol.BackupVerify')).rejects.toThrow(/^Loopvol\.BackupVerify: .*\(Verify: /);
    });

    it('refuses it for the operator commands too', async () => {
      answer = { Volumes: 'none' };
      await expect(askDaemon(oddSocket(), 'VolumeDriver.List', {})).rejects.toThrow(
        /^VolumeDriver\.List: the daemon's answer is not what this loopvol expects \(Volumes: /,
      );
    });

    it('keeps the fields a newer daemon adds, in their order', async () => {
      answer = { Extra: 1, Backups: [{ future: true, ...BACKUP }] };
      const reply = await ask('Loopvol.Backups');
      expect(JSON.stringify(reply)).toBe(JSON.stringify(answer));
    });

    it('still passes on the daemon Err as before', async () => {
      answer = { Err: 'volume ab does not exist' };
      await expect(ask('VolumeDriver.Get')).rejects.toThrow('VolumeDriver.Get: volume ab does not exist');
    });
  });
});

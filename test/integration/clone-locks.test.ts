import { describe, expect, it } from 'vitest';
import { lateClones } from '../../src/core/clone.js';
import type { ClusterGuard } from '../../src/core/cluster-guard.js';
import { Snapshots } from '../../src/snapshot/snapshots.js';
import { Layout } from '../../src/state/layout.js';
import { Store } from '../../src/state/store.js';
import type { VolumeService } from '../../src/volume/service.js';
import { silentLog } from '../helpers/int-log.js';
import { MiB, serviceCases } from '../helpers/int-service.js';
import { call, type PluginProcess, pluginCases, type Reply } from '../helpers/plugin.js';
import { storageAvailable } from '../helpers/tools.js';

/**
 * Generous for a loaded machine: what is measured is that an answer comes at all. A request that
 * waits on itself never answers, and the call fails with "no answer within".
 */
const ANSWER_MS = 30_000;

const ask = (p: PluginProcess, method: string, body: object): Promise<Reply> =>
  call(p.socket, method, body, ANSWER_MS);

/** Resolves with `work`'s outcome, or rejects when it has not settled within ANSWER_MS. */
function settles<T>(work: Promise<T>): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no outcome within ${ANSWER_MS / 1000} s: it waits on itself`)),
      ANSWER_MS,
    );
  });
  const outcome = Promise.allSettled([work]).then(([settled]) => settled as PromiseSettledResult<T>);
  return Promise.race([outcome, hung]).finally(() => clearTimeout(timer));
}

describe.runIf(storageAvailable())('no request waits on itself: clones and their locks', () => {
  const cases = pluginCases();
  const plugin = () => cases.start({ args: ['--spares', '0'] });

  it('refuses a clone of itself at once, and the name stays usable', async () => {
    await cases.begin('clone-self');
    const p = await plugin();
    for (const from of ['xx', 'xx@snap']) {
      const refused = await ask(p, 'VolumeDriver.Create', { Name: 'xx', Opts: { from } });
      expect(refused.status).toBe(400);
      expect(refused.body.Err).toBe(
        'cannot create volume xx from itself: from= names another volume or a snapshot of another volume',
      );
    }
    expect((await ask(p, 'VolumeDriver.Get', { Name: 'xx' })).status).toBe(404);
    expect((await ask(p, 'VolumeDriver.Create', { Name: 'xx', Opts: { size: '64M' } })).status).toBe(200);
    expect((await ask(p, 'VolumeDriver.Get', { Name: 'xx' })).status).toBe(200);
    expect((await ask(p, 'VolumeDriver.Remove', { Name: 'xx' })).status).toBe(200);
    expect(await p.stop()).toBe(0);
  });

  it('lets crossed clones (a from b, b from a) both finish, and both names answer after', async () => {
    await cases.begin('clone-crossed');
    const p = await plugin();
    const crossed = (a: string, b: string) =>
      Promise.all([
        ask(p, 'VolumeDriver.Create', { Name: a, Opts: { from: b } }),
        ask(p, 'VolumeDriver.Create', { Name: b, Opts: { from: a } }),
      ]);

    // Neither exists: each fails, naming the missing source.
    const [ab, ba] = await crossed('aa', 'bb');
    expect([ab.status, ba.status]).toEqual([404, 404]);
    expect(ab.body.Err).toMatch(/^cannot create volume aa: volume bb does not exist/);
    expect(ba.body.Err).toMatch(/^cannot create volume bb: volume aa does not exist/);
    for (const name of ['aa', 'bb'])
      expect((await ask(p, 'VolumeDriver.Get', { Name: name })).status).toBe(404);

    // The source exists: the clone is made, and the crossed Create of the source changes nothing.
    expect((await ask(p, 'VolumeDriver.Create', { Name: 'src', Opts: { size: '64M' } })).status).toBe(200);
    const made = await crossed('dst', 'src');
    expect(made.map((r) => r.status)).toEqual([200, 200]);
    for (const name of ['dst', 'src']) {
      const got = await ask(p, 'VolumeDriver.Get', { Name: name });
      expect(got.status).toBe(200);
      expect(got.body.Volume).toMatchObject({ Status: { size: 64 * MiB } });
    }
    for (const name of ['dst', 'src']) {
      expect((await ask(p, 'VolumeDriver.Remove', { Name: name })).status).toBe(200);
    }
    expect(await p.stop()).toBe(0);
  });
});

describe.runIf(storageAvailable())('crossed clones in one service, with and without a cluster', () => {
  const open = serviceCases('clone-crossed-service');

  /** A service whose clones are made by the snapshot room, as the daemon wires it. */
  async function cloning(cluster?: ClusterGuard) {
    // The service and its snapshot room need each other: the service asks for it at each clone.
    let snapshots: Snapshots | undefined;
    const opened = await open({ cluster, clones: lateClones(() => snapshots as Snapshots) });
    const { service, root } = opened;
    snapshots = new Snapshots(new Store(new Layout(root)), service, {
      maxFreezeMs: 2_000,
      copyBytesPerSecond: 400 * MiB,
    });
    return opened;
  }

  /** Both Creates start in the same turn, so each holds its own name before it asks for the other. */
  const crossed = (service: VolumeService, a: string, b: string) =>
    Promise.all([
      settles(service.create(a, { from: b }, silentLog)),
      settles(service.create(b, { from: a }, silentLog)),
    ]);

  it('finishes both, failing clearly or cloning, and every name answers after', async () => {
    const { service } = await cloning();
    const [ab, ba] = await crossed(service, 'aa', 'bb');
    expect(ab).toMatchObject({ status: 'rejected', reason: { kind: 'not-found' } });
    expect(ba).toMatchObject({ status: 'rejected', reason: { kind: 'not-found' } });
    expect(await settles(service.get('aa'))).toMatchObject({
      status: 'rejected',
      reason: { kind: 'not-found' },
    });

    await service.create('src', { size: '64M' }, silentLog);
    expect((await crossed(service, 'dst', 'src')).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    for (const name of ['dst', 'src']) {
      expect(await settles(service.get(name))).toMatchObject({
        status: 'fulfilled',
        value: { Status: { size: 64 * MiB } },
      });
      await service.remove(name, silentLog);
    }
    await service.idle();
  });

  it('gives both claims back when crossed clones fail, and claims nothing for a clone of itself', async () => {
    const claims: string[] = [];
    const undone: string[] = [];
    const guard: Pick<ClusterGuard, 'claimForCreate'> = {
      async claimForCreate(name) {
        claims.push(name);
        return { plan: 'empty', claim: { undo: async () => void undone.push(name) } };
      },
    };
    const { service } = await cloning(guard as ClusterGuard);

    expect(await settles(service.create('self', { from: 'self@snap' }, silentLog))).toMatchObject({
      status: 'rejected',
      reason: { kind: 'invalid' },
    });
    const [ab, ba] = await crossed(service, 'aa', 'bb');
    expect([ab.status, ba.status]).toEqual(['rejected', 'rejected']);
    expect(claims.sort()).toEqual(['aa', 'bb']);
    expect(undone.sort()).toEqual(['aa', 'bb']);
    for (const name of ['aa', 'bb', 'self']) {
      expect(await settles(service.get(name))).toMatchObject({
        status: 'rejected',
        reason: { kind: 'not-found' },
      });
    }
  });
});

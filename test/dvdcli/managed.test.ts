import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoveryRoots } from '../../src/dvdcli/discovery.js';
import { locatePlugin } from '../../src/dvdcli/locate.js';
import { dockerHost, findManagedPlugin, ManagedPluginDisabledError } from '../../src/dvdcli/managed.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';

const ID = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const volumeTypes = [{ Prefix: 'docker', Capability: 'volumedriver', Version: '1.0' }];

/** What dockerd's GET /plugins answers (the fields dvdcli reads, and a few it ignores). */
const PLUGINS = [
  {
    Id: ID,
    Name: 'loopvol:latest',
    Enabled: true,
    Settings: { Env: [] },
    // dockerd's real answer: types as strings.
    Config: {
      Interface: { Socket: 'loopvol.sock', Types: ['docker.volumedriver/1.0'] },
      PropagatedMount: '/mnt/loopvol',
    },
  },
  {
    Id: OTHER,
    Name: 'loopvol:next',
    Enabled: false,
    Config: { Interface: { Socket: 'loopvol.sock', Types: volumeTypes }, PropagatedMount: '/mnt/loopvol' },
  },
  {
    Id: 'c'.repeat(64),
    Name: 'logger:latest',
    Enabled: true,
    Config: {
      Interface: {
        Socket: 'log.sock',
        Types: [{ Prefix: 'docker', Capability: 'logdriver', Version: '1.0' }],
      },
    },
  },
];

/** A managed plugin is found through dockerd's API; a fake dockerd answers /plugins and /info. */
describe('dvdcli and managed (v2) plugins', () => {
  let dir = '';
  let api: Server;
  const docker = () => ({ kind: 'unix' as const, path: join(dir, 'docker.sock') });
  const roots = () => ({ socketsDir: join(dir, 'sockets'), specDirs: [join(dir, 'specs')] });

  beforeAll(async () => {
    dir = await makeTempDir('dvdcli-managed');
    await mkdir(join(dir, 'sockets'));
    api = createServer((req, res) => {
      const body =
        req.url === '/plugins' ? PLUGINS : req.url === '/info' ? { DockerRootDir: '/srv/docker' } : null;
      res.writeHead(body ? 200 : 404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body ?? { message: 'page not found' }));
    });
    await new Promise<void>((resolve) => api.listen(join(dir, 'docker.sock'), resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => api?.close(resolve));
    if (dir) await cleanupTempDir(dir);
  });

  it('finds NAME:latest, calls its socket under the sockets dir, and gives mountpoints as the host sees them', async () => {
    const plugin = await findManagedPlugin('loopvol', docker(), join(dir, 'sockets'), 5_000);
    expect(plugin?.address).toEqual({ kind: 'unix', path: join(dir, 'sockets', ID, 'loopvol.sock') });
    expect(plugin?.hostPath('/mnt/loopvol/pg')).toBe(`/srv/docker/plugins/${ID}/propagated-mount/pg`);
    expect(plugin?.hostPath('/mnt/loopvol')).toBe(`/srv/docker/plugins/${ID}/propagated-mount`);
    // Outside the propagated mount dockerd scopes the path to the plugin's rootfs.
    expect(plugin?.hostPath('/mnt/loopvolx/pg')).toBe(`/srv/docker/plugins/${ID}/rootfs/mnt/loopvolx/pg`);
    expect(plugin?.hostPath('')).toBe('');
  });

  it('says how to enable a disabled plugin, and ignores plugins that are not volume drivers', async () => {
    await expect(findManagedPlugin('loopvol:next', docker(), dir, 5_000)).rejects.toThrow(
      new ManagedPluginDisabledError(
        'volume plugin loopvol:next is installed but disabled: docker plugin enable loopvol:next',
      ),
    );
    expect(await findManagedPlugin('logger', docker(), dir, 5_000)).toBeUndefined();
  });

  it('reports a driver found nowhere, and a dockerd that cannot be asked', async () => {
    await expect(locatePlugin('absent', roots(), docker(), 5_000)).rejects.toThrow(
      /^volume driver "absent" not found: .*; dockerd has no managed volume plugin absent either$/,
    );
    const nowhere = { kind: 'unix' as const, path: join(dir, 'no-docker.sock') };
    await expect(locatePlugin('absent', roots(), nowhere, 5_000)).rejects.toThrow(
      /not found: .*\(dockerd could not be asked for managed plugins: GET \/plugins: connect ENOENT/,
    );
  });

  it('prefers a plugin socket or spec file, as dockerd does', async () => {
    const spec = roots();
    await mkdir(spec.specDirs[0] as string, { recursive: true });
    await writeFile(join(spec.specDirs[0] as string, 'loopvol.spec'), 'unix:///run/elsewhere.sock\n');
    const found = await locatePlugin('loopvol', spec, docker(), 5_000);
    expect(found.address).toEqual({ kind: 'unix', path: '/run/elsewhere.sock' });
    expect(found.hostPath('/x')).toBe('/x');
  });

  it('reads DOCKER_HOST like the docker CLI', () => {
    expect(dockerHost({})).toEqual({ kind: 'unix', path: '/var/run/docker.sock' });
    expect(dockerHost({ DOCKER_HOST: 'unix:///srv/d.sock' })).toEqual({ kind: 'unix', path: '/srv/d.sock' });
    expect(dockerHost({ DOCKER_HOST: 'tcp://127.0.0.1:2375' })).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 2375,
    });
    expect(discoveryRoots({}).socketsDir).toBe('/run/docker/plugins');
  });
});

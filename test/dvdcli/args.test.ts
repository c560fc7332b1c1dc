import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDvdcliArgs } from '../../src/dvdcli/args.js';
import { findPlugin, parseSpecAddress } from '../../src/dvdcli/discovery.js';
import { cleanupTempDir, makeTempDir } from '../helpers/kernel.js';

describe('dvdcli flags', () => {
  it('reads --flag=value and --flag value, the last of a repeated flag winning', () => {
    expect(
      parseDvdcliArgs(['mount', '--volumedriver', 'loopvol', '--volumename=a', '--volumename=pg']),
    ).toEqual({
      command: 'mount',
      driver: 'loopvol',
      volume: 'pg',
      opts: {},
      explicitCreate: false,
      json: false,
    });
  });

  it('splits --volumeopts on commas, repeatable, keeping "=" inside values', () => {
    const args = parseDvdcliArgs([
      'mount',
      '--volumedriver=loopvol',
      '--volumename=pg',
      '--volumeopts=size=5,fs=xfs',
      '--volumeopts',
      'mode=0750',
      '--volumeopts=label=a=b',
    ]);
    expect(args.opts).toEqual({ size: '5', fs: 'xfs', mode: '0750', label: 'a=b' });
  });

  it.each([
    [['--explicitcreate'], true],
    [['--explicitcreate=true'], true],
    [['--explicitcreate=false'], false],
    [['--explicitCreate=true'], true],
    [['--explicitCreate'], true],
    [[], false],
  ])('reads %j as explicitcreate %s', (flags, expected) => {
    const args = parseDvdcliArgs(['mount', '--volumedriver=d', '--volumename=v', ...flags]);
    expect(args.explicitCreate).toBe(expected);
  });

  it.each([
    [['mount', '--volumename=v'], 'volume driver name'],
    [['mount', '--volumedriver=d'], '--volumename is required'],
    [['frob', '--volumedriver=d', '--volumename=v'], 'the command must be one of mount, unmount'],
    [['mount', '--volumedriver=../x', '--volumename=v'], 'volume driver name must be'],
    [['mount', '--volumedriver=d', '--volumename=v', '--volumeopts=novalue'], '"novalue" is not key=value'],
    [['mount', '--volumedriver=d', '--volumename=v', '--bogus=1'], 'unknown flag --bogus'],
    [['mount', '--volumedriver'], '--volumedriver needs a value'],
    [['mount', '--volumedriver=d', '--volumename=v', '--explicitcreate=maybe'], 'true or false'],
  ])('refuses %j', (argv, message) => {
    expect(() => parseDvdcliArgs(argv)).toThrow(message);
  });

  it('reads --json, and needs no driver for version', () => {
    expect(parseDvdcliArgs(['get', '--volumedriver=d', '--volumename=v', '--json']).json).toBe(true);
    expect(parseDvdcliArgs(['version'])).toMatchObject({ command: 'version', driver: '' });
  });

  it('needs no volume name for list', () => {
    expect(parseDvdcliArgs(['list', '--volumedriver=d']).volume).toBe('');
  });
});

describe('plugin discovery (Docker rules)', () => {
  let dir: string;
  const servers: Server[] = [];
  const listen = async (path: string) => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(path, resolve));
    servers.push(server);
  };

  beforeAll(async () => {
    dir = await makeTempDir('dvdcli-discovery');
    await mkdir(join(dir, 'sockets', 'nested'), { recursive: true });
    await mkdir(join(dir, 'etc', 'both'), { recursive: true });
    await mkdir(join(dir, 'lib'), { recursive: true });
    await listen(join(dir, 'sockets', 'flat.sock'));
    await listen(join(dir, 'sockets', 'nested', 'nested.sock'));
    await listen(join(dir, 'sockets', 'both.sock'));
    await writeFile(join(dir, 'etc', 'unixspec.spec'), 'unix:///run/x/unixspec.sock\n');
    await writeFile(join(dir, 'lib', 'tcpspec.spec'), 'tcp://127.0.0.1:8765');
    await writeFile(join(dir, 'etc', 'both', 'both.spec'), 'tcp://127.0.0.1:1');
    await writeFile(
      join(dir, 'lib', 'jsonspec.json'),
      JSON.stringify({ Name: 'jsonspec', Addr: 'tcp://[::1]:9000' }),
    );
    await writeFile(join(dir, 'etc', 'broken.spec'), 'http://x');
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    if (dir) await cleanupTempDir(dir);
  });

  const roots = () => ({ socketsDir: join(dir, 'sockets'), specDirs: [join(dir, 'etc'), join(dir, 'lib')] });

  it.each([
    ['flat', { kind: 'unix', path: 'sockets/flat.sock' }],
    ['nested', { kind: 'unix', path: 'sockets/nested/nested.sock' }],
    ['both', { kind: 'unix', path: 'sockets/both.sock' }],
    ['unixspec', { kind: 'unix', path: '/run/x/unixspec.sock' }],
    ['tcpspec', { kind: 'tcp', host: '127.0.0.1', port: 8765 }],
    ['jsonspec', { kind: 'tcp', host: '::1', port: 9000 }],
  ])('finds %s', async (name, expected) => {
    const found = await findPlugin(name, roots());
    const path = 'path' in expected && !expected.path.startsWith('/') ? join(dir, expected.path) : undefined;
    expect(found).toEqual(path ? { ...expected, path } : expected);
  });

  it('explains what it looked for when a plugin is missing', async () => {
    await expect(findPlugin('absent', roots())).rejects.toThrow(
      /volume driver "absent" not found: no absent.sock in .*sockets/,
    );
  });

  it('refuses a spec that is neither unix:// nor tcp://', async () => {
    await expect(findPlugin('broken', roots())).rejects.toThrow(
      'is not a unix:// or tcp://host:port address',
    );
    expect(() => parseSpecAddress('tcp://host-without-port', 'x.spec')).toThrow('x.spec');
  });
});

// PostgreSQL on a volume against PostgreSQL on a plain directory of the same host filesystem:
// Debian's postgresql, pgbench TPC-B-like at scale 10 with 4 clients, interleaved rounds (each
// round starts one server at a time on its data directory, runs pgbench, stops it), for each
// volume configuration (volumes.mjs). Servers run as the postgres user, on a socket of their own.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { connect } from './lib.mjs';
import { configsFor, mountVolume, ratioOf, roundOrder } from './volumes.mjs';

/** The newest installed PostgreSQL's programs (Debian keeps them out of PATH); undefined if none. */
export function postgresBin() {
  const root = '/usr/lib/postgresql';
  const version = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'pgbench')))
        .sort((a, b) => Number(a) - Number(b))
        .at(-1)
    : undefined;
  return version && join(root, version, 'bin');
}

const idOf = (flag) => Number(execFileSync('id', [flag, 'postgres']).toString());

/** One PostgreSQL cluster in `dataDir` whose socket is in `socketDir` (the port names the socket). */
function cluster(bin, dataDir, socketDir, port) {
  const asPostgres = (tool, args, timeout = 600_000) =>
    execFileSync('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], {
      timeout,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  const server = ['-D', dataDir];
  const conn = ['-h', socketDir, '-p', String(port)];
  return {
    init(scale) {
      asPostgres('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-instructions']);
      this.start();
      try {
        asPostgres('pgbench', ['-i', '-q', '-s', String(scale), ...conn, 'postgres']);
      } finally {
        this.stop();
      }
    },
    start() {
      const options = `-k ${socketDir} -p ${port} -c listen_addresses=`;
      asPostgres('pg_ctl', [...server, '-w', '-l', join(dataDir, 'server.log'), '-o', options, 'start']);
    },
    /** Transactions per second of one pgbench run of `seconds`. */
    run(clients, seconds) {
      const out = asPostgres('pgbench', [
        '-b',
        'tpcb-like',
        '-c',
        String(clients),
        '-j',
        String(Math.min(clients, 2)),
        '-T',
        String(seconds),
        ...conn,
        'postgres',
      ]);
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1];
      if (!tps) throw new Error(`no tps in pgbench's output: ${out}`);
      return Number(tps);
    },
    /** Fast shutdown: a checkpoint, then exit. Quiet when the server is not running. */
    stop() {
      if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
      asPostgres('pg_ctl', [...server, '-w', '-m', 'fast', 'stop']);
    },
  };
}

/** The postgres user must reach its data directory: search permission on the directories above it. */
function openPathFor(path, top) {
  for (let d = dirname(path); d.startsWith(top); d = dirname(d)) chmodSync(d, statSync(d).mode | 0o001);
}

export async function pgbench(daemon, dir, { quick, rounds, seconds, scale = 10, clients = 4 }) {
  const bin = postgresBin();
  if (!bin) return { skipped: 'no PostgreSQL here (Debian: apt-get install postgresql)' };
  const owner = { uid: idOf('-u'), gid: idOf('-g') };
  const client = connect(daemon.socket, { keepAlive: false });
  const base = join(dir, 'pgbench');
  const sockets = join(base, 'sockets');
  mkdirSync(sockets, { recursive: true });
  chownSync(sockets, owner.uid, owner.gid);
  openPathFor(sockets, dir);
  const places = [];
  try {
    const plainDir = join(base, 'plain');
    mkdirSync(plainDir);
    chownSync(plainDir, owner.uid, owner.gid);
    places.push({ name: 'plain', dataDir: plainDir });
    for (const [i, config] of configsFor(quick).entries()) {
      const volume = await mountVolume(client, config, `pg${i}`, {
        size: '2G',
        uid: String(owner.uid),
        gid: String(owner.gid),
        mode: '0700',
      });
      places.push({ name: config.name, dataDir: join(volume.mountPoint, 'data'), ...volume });
      mkdirSync(join(volume.mountPoint, 'data'), { mode: 0o700 });
      chownSync(join(volume.mountPoint, 'data'), owner.uid, owner.gid);
      openPathFor(volume.mountPoint, dir);
    }
    for (const [i, place] of places.entries()) {
      place.db = cluster(bin, place.dataDir, sockets, 25432 + i);
      place.db.init(scale);
      place.tps = [];
    }
    for (let round = 0; round < rounds; round++) {
      for (const place of roundOrder(round, places)) {
        place.db.start();
        try {
          place.tps.push(place.db.run(clients, seconds));
        } finally {
          place.db.stop();
        }
      }
    }
    const [plain, ...volumes] = places;
    return {
      scale,
      clients,
      rounds,
      seconds,
      plainTps: plain.tps,
      configs: Object.fromEntries(
        volumes.map((v) => [
          v.name,
          { tps: v.tps, createSeconds: v.createSeconds, ...ratioOf(plain.tps, v.tps) },
        ]),
      ),
    };
  } finally {
    for (const place of places) {
      try {
        place.db?.stop();
      } catch {}
      await place.remove?.().catch((err) => process.stderr.write(`pgbench cleanup: ${err.message}\n`));
    }
    client.close();
  }
}

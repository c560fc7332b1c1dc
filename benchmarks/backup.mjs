// What a backup costs (seconds, bytes read) and what a dead owner's volume costs its next agent:
// RTO (owner's death to the Mount answering there, restore included) and RPO (what is lost).
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcp } from 'node:net';
import { join } from 'node:path';
import { fileSpace } from '../dist/system/fsstat.js';
import { now, releaseKernelState, startDaemon } from './lib.mjs';

const MiB = 2 ** 20;
const FILE_BYTES = 16 * MiB;
const ID = 'e'.repeat(64);
const sha = (data) => createHash('sha256').update(data).digest('hex');

/**
 * Runs `section` on a fresh xfs filesystem (reflinks on) mounted at `dir`: a data root where the
 * consistent copy a backup starts from is a reflink, instant whatever the volume holds. On an
 * ext4 data root that copy moves every allocated byte while the volume is frozen.
 */
async function onXfs(dir, section) {
  mkdirSync(dir, { recursive: true });
  const image = `${dir}.img`;
  execFileSync('truncate', ['-s', '64G', image]);
  execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image]);
  execFileSync('mount', ['-o', 'loop', image, dir]);
  try {
    return await section(dir);
  } finally {
    // A killed agent leaves its volumes mounted: they go first (deepest first), then the data root.
    await releaseKernelState(dir);
    rmSync(image, { force: true });
  }
}

function repository(dir) {
  const repo = join(dir, 'repo');
  const password = join(dir, 'password');
  writeFileSync(password, 'bench\n', { mode: 0o600 });
  execFileSync('restic', ['init', '--repo', repo, '--password-file', password, '--quiet']);
  return { repo, password, args: ['--backup-repo', repo, '--backup-password-file', password] };
}

/** Writes `bytes` of random data as 16 MiB files and flushes them; returns each file's hash. */
function fill(mountPoint, bytes) {
  const hashes = {};
  for (let i = 0; i < bytes / FILE_BYTES; i++) {
    const data = randomBytes(FILE_BYTES);
    writeFileSync(join(mountPoint, `data-${i}`), data);
    hashes[`data-${i}`] = sha(data);
  }
  execFileSync('sync', ['-f', mountPoint]);
  return hashes;
}

async function mountNew(daemon, name, size) {
  await daemon.call('VolumeDriver.Create', { Name: name, Opts: { size } });
  return (await daemon.call('VolumeDriver.Mount', { Name: name, ID })).Mountpoint;
}

/** One Loopvol.Backup: seconds, and what the daemon logged of it (bytes restic read, added). */
async function timedBackup(daemon, name, image) {
  const started = now();
  const { Backup } = await daemon.call('Loopvol.Backup', { Name: name });
  const seconds = (now() - started) / 1000;
  const line = daemon.logLines('files backed up').at(-1);
  return {
    id: Backup.id,
    seconds,
    // Read where it is (live, frozen) or from a consistent copy.
    via: line.via,
    readBytes: line.readBytes,
    dataAddedBytes: line.dataAdded,
    filesChanged: line.filesChanged + line.filesNew,
    // What a consistent copy would move first (a reflink where the data root shares blocks).
    imageAllocatedBytes: fileSpace(image).allocatedBytes,
  };
}

/**
 * A never-written volume, a first backup of one holding `dataBytes`, and the next backup after
 * rewriting one 16 MiB file. `legacy`: also time the whole-image backup of that volume
 * (restic --stdin of its image, as loopvol did before), for comparison.
 */
export const backupCost = (dir, plan) => onXfs(dir, (root) => backupCostIn(root, plan, ['--spares', '0']));

/**
 * The same on the host's filesystem (ext4 here), with the default --max-freeze: a mounted volume
 * is read live (frozen, no copy); a copy, which would move every allocated byte, only if not.
 */
export function backupCostOnHost(dir, plan) {
  mkdirSync(dir, { recursive: true });
  return backupCostIn(dir, plan, ['--spares', '0']);
}

async function backupCostIn(dir, { sizeSpec, dataBytes, legacy }, daemonArgs) {
  const { repo, password, args } = repository(dir);
  const daemon = await startDaemon(dir, [...daemonArgs, ...args], { keepLog: true });
  const image = (name) => join(dir, 'root', 'volumes', name, 'disk.img');
  try {
    await mountNew(daemon, 'never', sizeSpec);
    const never = await timedBackup(daemon, 'never', image('never'));
    const mountPoint = await mountNew(daemon, 'data', sizeSpec);
    fill(mountPoint, dataBytes);
    // Unmounted: a first backup of a mounted volume reads all its data while it is frozen, past
    // --max-freeze here, and then a copy of it, refused on ext4 for the same reason.
    await daemon.call('VolumeDriver.Unmount', { Name: 'data', ID });
    const first = await timedBackup(daemon, 'data', image('data'));
    await daemon.call('VolumeDriver.Mount', { Name: 'data', ID });
    writeFileSync(join(mountPoint, 'data-1'), randomBytes(FILE_BYTES));
    execFileSync('sync', ['-f', mountPoint]);
    const incremental = await timedBackup(daemon, 'data', image('data'));
    let wholeImage;
    if (legacy) {
      const started = now();
      // The live image, unfrozen: only its reading cost is measured, not a consistent backup.
      const input = openSync(image('data'), 'r');
      try {
        const command = ['--repo', repo, '--password-file', password, '--no-cache', '--quiet', 'backup'];
        execFileSync('restic', [...command, '--stdin', '--stdin-filename', '/data.img'], {
          stdio: [input, 'ignore', 'inherit'],
        });
      } finally {
        closeSync(input);
      }
      wholeImage = { seconds: (now() - started) / 1000 };
    }
    for (const name of ['never', 'data']) {
      await daemon.call('VolumeDriver.Unmount', { Name: name, ID });
      await daemon.call('VolumeDriver.Remove', { Name: name });
    }
    return { sizeSpec, dataBytes, never, first, incremental, wholeImage };
  } finally {
    await daemon.stop();
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether ZooKeeper answers its "ruok" four-letter command. */
const ruok = (port) =>
  new Promise((resolve) => {
    const socket = tcp(port, '127.0.0.1', () => socket.write('ruok'));
    socket.on('data', (d) => {
      resolve(d.toString() === 'imok');
      socket.end();
    });
    socket.on('error', () => resolve(false));
  });

/** A ZooKeeper server on 127.0.0.1 with its own data dir, as test/helpers/zookeeper.ts starts one. */
async function startZooKeeper(dir) {
  const port = await new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
  const config = join(dir, 'zoo.cfg');
  mkdirSync(join(dir, 'zk-data'));
  writeFileSync(
    config,
    [
      'tickTime=500',
      `dataDir=${join(dir, 'zk-data')}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'admin.enableServer=false',
      'minSessionTimeout=1000',
      '4lw.commands.whitelist=ruok',
    ].join('\n'),
  );
  const classpath = '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar';
  const main = 'org.apache.zookeeper.server.quorum.QuorumPeerMain';
  const child = spawn('java', ['-cp', classpath, `-Dzookeeper.log.dir=${dir}`, main, config], {
    stdio: 'ignore',
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await once(child, 'exit');
  };
  const deadline = now() + 30_000;
  while (!(await ruok(port))) {
    if (now() > deadline || child.exitCode !== null) {
      await stop();
      throw new Error('ZooKeeper did not start');
    }
    await sleep(200);
  }
  return { port, stop };
}

/**
 * Two agents on one ZooKeeper. The owner writes `dataBytes`, backs up, writes a marker, and is
 * killed (SIGKILL). The next agent is asked as an orchestrator would (Create with
 * --restore-missing, then Mount), retried while the cluster still gives the volume to the dead
 * owner. RTO: death to the Mount's answer; RPO: what the next agent lacks.
 */
export const failover = (dir, plan) => onXfs(dir, (root) => failoverIn(root, plan));

async function failoverIn(dir, { sizeSpec, dataBytes, timeoutS }) {
  const { args } = repository(dir);
  const zk = await startZooKeeper(dir);
  const agents = [];
  const agent = async (id) => {
    const cluster = ['--cluster', `zk://127.0.0.1:${zk.port}/bench`, '--cluster-timeout', String(timeoutS)];
    const daemon = await startDaemon(
      join(dir, id),
      ['--spares', '0', ...cluster, '--node-id', id, '--restore-missing', ...args],
      { keepLog: true },
    );
    agents.push(daemon);
    while (daemon.logLines('joined the cluster').length === 0) await sleep(50);
    return daemon;
  };
  try {
    const a = await agent('agent-a');
    const b = await agent('agent-b');
    const mountA = await mountNew(a, 'pg', sizeSpec);
    const hashes = fill(mountA, dataBytes);
    const backup = await timedBackup(a, 'pg', join(dir, 'agent-a', 'root', 'volumes', 'pg', 'disk.img'));
    writeFileSync(join(mountA, 'after-backup'), 'written after the last backup\n');
    execFileSync('sync', ['-f', mountA]);
    const died = now();
    await a.kill();
    let refusals = 0;
    let lastRefusal = '';
    let createStarted;
    for (;;) {
      createStarted = now();
      try {
        await b.call('VolumeDriver.Create', { Name: 'pg', Opts: {} });
        break;
      } catch (err) {
        if (now() - died > 120_000) throw err;
        refusals++;
        lastRefusal = err.message;
        await sleep(100);
      }
    }
    const mountB = (await b.call('VolumeDriver.Mount', { Name: 'pg', ID })).Mountpoint;
    const answered = now();
    const kept = Object.entries(hashes).filter(
      ([file, hash]) => existsSync(join(mountB, file)) && sha(readFileSync(join(mountB, file))) === hash,
    ).length;
    const markerLost = !existsSync(join(mountB, 'after-backup'));
    await b.call('VolumeDriver.Unmount', { Name: 'pg', ID });
    return {
      sizeSpec,
      dataBytes,
      sessionTimeoutS: timeoutS,
      backupSeconds: backup.seconds,
      rtoSeconds: (answered - died) / 1000,
      waitForTakeoverSeconds: (createStarted - died) / 1000,
      restoreAndMountSeconds: (answered - createStarted) / 1000,
      refusals,
      lastRefusal,
      filesBackedUp: Object.keys(hashes).length,
      filesRestoredIntact: kept,
      lostOnlyWhatFollowedTheBackup: kept === Object.keys(hashes).length && markerLost,
    };
  } finally {
    for (const daemon of agents) await daemon.stop();
    await zk.stop();
  }
}

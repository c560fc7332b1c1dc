#!/usr/bin/env node
// Checks the import graph of src/**/*.ts (part of `npm run lint`): exits 1 with one line per offending
// import when src files import each other in a circle, or when a folder imports one it may not use.
// Type-only and dynamic imports count too: a circle through a type is still a circle in the design.
//
// Which folder ("area") may import which. A file directly in src/ belongs to area `root`. An area
// may always import its own files. The table must stay acyclic (checked below).
//
//   area         may import                                          why
//   ----------   -------------------------------------------------   ---------------------------------------
//   core         (node and npm only)                                 types and rules every layer shares
//   system       core                                                one tool or kernel interface each
//   state        core system                                         beside backend: records, layout, store
//   backend      core system state                                   loop images, pool disks, spares
//   encryption   core system state                                   fscrypt keys of encrypted volumes
//   volume       core system state backend encryption                the volume service
//   protocol     core system state backend volume                    VolumeDriver endpoints over the service
//   server       core system state backend volume protocol           the Unix socket
//   cluster      ROOM                                                ownership in ZooKeeper, self-fencing
//   snapshot     ROOM                                                snapshots and clones
//   backup       ROOM snapshot                                       an image backup copies a snapshot
//   maintenance  ROOM                                                fsck, gc
//   mountdisk    ROOM                                                loopvol mount-disk, mesos-resources
//   metrics      ROOM backup protocol                                observes backups and each request
//                                                                    (implements protocol's RequestObserver)
//   doctor       ROOM cluster protocol                               checks the ZooKeeper connection and
//                                                                    asks the running plugin (its client)
//   dvdcli       ROOM protocol                                       a client of the plugin's socket
//   config       every area but root, cli, sea                       the daemon's Config holds each room's
//                                                                    options (ClusterOptions, ListenAddress)
//   root         every area but cli, sea                             daemon.ts and extensions.ts: the wiring
//   cli          every area but sea                                  the commands (serve starts daemon.ts)
//   sea          every area                                          the single executable's entry
//
// ROOM (the rooms beside the service): core system state backend encryption, and volume/ except the concrete
// service class file src/volume/service.ts (rooms see the service through its port).
//
// Usage: node scripts/check-imports.mjs [SRC_DIR]   (SRC_DIR defaults to this checkout's src/)

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOM = ['core', 'system', 'state', 'backend', 'encryption', 'volume'];
const SIDE_ROOMS = [
  'cluster',
  'snapshot',
  'backup',
  'maintenance',
  'mountdisk',
  'metrics',
  'doctor',
  'dvdcli',
];
const BELOW_CONFIG = [...ROOM, 'protocol', 'server', ...SIDE_ROOMS];

/** area -> the other areas it may import. */
const ALLOWED = {
  core: [],
  system: ['core'],
  state: ['core', 'system'],
  backend: ['core', 'system', 'state'],
  encryption: ['core', 'system', 'state'],
  volume: ['core', 'system', 'state', 'backend', 'encryption'],
  protocol: ['core', 'system', 'state', 'backend', 'encryption', 'volume'],
  server: ['core', 'system', 'state', 'backend', 'encryption', 'volume', 'protocol'],
  cluster: ROOM,
  snapshot: ROOM,
  backup: [...ROOM, 'snapshot'],
  maintenance: ROOM,
  mountdisk: ROOM,
  metrics: [...ROOM, 'backup', 'protocol'],
  doctor: [...ROOM, 'cluster', 'protocol'],
  dvdcli: [...ROOM, 'protocol'],
  config: BELOW_CONFIG,
  root: [...BELOW_CONFIG, 'config'],
  cli: [...BELOW_CONFIG, 'config', 'root'],
  sea: [...BELOW_CONFIG, 'config', 'root', 'cli'],
};

/** Files an area may not import although their area is allowed (path relative to src/). */
const FORBIDDEN_FILES = Object.fromEntries(SIDE_ROOMS.map((room) => [room, ['volume/service.ts']]));

/**
 * Imports that break the rules today, each with why it stays for now (paths relative to src/). An
 * exception that no longer matches an import fails the check too, so the list only shrinks.
 */
/** Imports against the table that are tolerated for now, each with why (none today). */
const ALLOWED_EXCEPTIONS = [];

const srcDir = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
const problems = [];

/** The table itself must not allow a circle between areas. */
function checkTableAcyclic() {
  const state = new Map();
  const visit = (area, path) => {
    if (state.get(area) === 'done') return;
    if (state.get(area) === 'open') {
      problems.push(`layer table: areas allow each other in a circle: ${[...path, area].join(' -> ')}`);
      return;
    }
    state.set(area, 'open');
    for (const next of ALLOWED[area] ?? []) visit(next, [...path, area]);
    state.set(area, 'done');
  };
  for (const area of Object.keys(ALLOWED)) visit(area, []);
}

function listSources(dir) {
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .map((f) => f.split(sep).join('/'))
    .sort();
}

// import x from '…', import { a,\n b } from '…', import type …, import '…', export … from '…', import('…').
const STATIC = /^[ \t]*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s*from\s*)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function specifiersOf(text) {
  return [...text.matchAll(STATIC), ...text.matchAll(DYNAMIC)].map((m) => m[1]);
}

/** A relative specifier to a file under src/ (relative path), or undefined for node/npm modules. */
function resolveSpecifier(fromFile, spec) {
  if (!spec.startsWith('.')) return undefined;
  const base = resolve(srcDir, dirname(fromFile), spec);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, join(base, 'index.ts')];
  const found = candidates.find((c) => c.endsWith('.ts') && existsSync(c));
  const rel = relative(srcDir, found ?? base.replace(/\.js$/, '.ts'))
    .split(sep)
    .join('/');
  if (!found) problems.push(`src/${fromFile} -> src/${rel}: imports a file that does not exist ('${spec}')`);
  return rel.startsWith('..') ? undefined : rel;
}

const areaOf = (file) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : 'root');

function checkLayers(graph) {
  const used = new Set();
  for (const [from, targets] of graph) {
    const area = areaOf(from);
    if (!(area in ALLOWED)) {
      problems.push(`src/${from}: folder '${area}' is not in the layer table of scripts/check-imports.mjs`);
      continue;
    }
    for (const to of targets) {
      const toArea = areaOf(to);
      if (toArea === area) continue;
      const forbidden = (FORBIDDEN_FILES[area] ?? []).includes(to);
      if (ALLOWED[area].includes(toArea) && !forbidden) continue;
      const exception = ALLOWED_EXCEPTIONS.findIndex((e) => e.from === from && e.to === to);
      if (exception >= 0) {
        used.add(exception);
        continue;
      }
      const why = forbidden
        ? `${area}/ may not import this file (use the port)`
        : `${area}/ may import only: ${ALLOWED[area].join(', ') || 'node and npm modules'}`;
      problems.push(`src/${from} -> src/${to}: import against the layers (${why})`);
    }
  }
  ALLOWED_EXCEPTIONS.forEach((e, i) => {
    if (!used.has(i)) {
      problems.push(
        `src/${e.from} -> src/${e.to}: listed in ALLOWED_EXCEPTIONS but no longer imported; remove it`,
      );
    }
  });
}

/** Reports each import that closes a circle, with the circle it closes. */
function checkCycles(graph) {
  const state = new Map();
  const stack = [];
  const visit = (file) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') {
        const circle = [...stack.slice(stack.indexOf(next)), next].map((f) => `src/${f}`);
        problems.push(`src/${file} -> src/${next}: import cycle (${circle.join(' -> ')})`);
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
}

checkTableAcyclic();
const graph = new Map();
for (const file of listSources(srcDir)) {
  const text = readFileSync(join(srcDir, file), 'utf8');
  const targets = specifiersOf(text)
    .map((spec) => resolveSpecifier(file, spec))
    .filter((t) => t !== undefined && t !== file);
  graph.set(file, [...new Set(targets)].sort());
}
checkLayers(graph);
checkCycles(graph);

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(
    `check-imports: ${problems.length} problem(s) in ${graph.size} files (rules: scripts/check-imports.mjs)`,
  );
  process.exit(1);
}
console.log(`check-imports: ${graph.size} files, no import cycles, every import points down the layers`);

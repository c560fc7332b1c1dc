#!/usr/bin/env node
import { execFileSync, spawnSync } from 'node:child_process';
// Builds DIR/loopvol (DIR: the argument, default build/): one executable for hosts without Node.js
// (Node's single executable applications), and DIR/dvdcli, a link to it. `npm run build:sea`.
//   1. esbuild bundles src/sea/entry.ts and every dependency into one CommonJS file;
//   2. koffi's native addon goes in as a SEA asset (an addon cannot load from inside the binary:
//      src/sea/koffi-addon.ts writes it to a private directory at start and loads it from there;
//      taken from the helper session's sea-binary branch, with its directory fallbacks);
//   3. node --experimental-sea-config makes the blob; postject injects it into a copy of node.
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'build'));
const work = join(out, 'sea');
const addon = join(root, 'node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

/** koffi's CommonJS entry, and its per-platform addon package replaced by the embedded addon. */
const embeddedKoffi = {
  name: 'embedded-koffi',
  setup(b) {
    b.onResolve({ filter: /^koffi$/ }, () => ({ path: join(root, 'node_modules/koffi/index.cjs') }));
    b.onResolve({ filter: /^@koromix\/koffi-/ }, (args) =>
      args.path === '@koromix/koffi-linux-x64'
        ? { path: 'koffi-addon', namespace: 'embedded' }
        : { path: args.path, external: true },
    );
    // debug's optional colour support, absent here: an empty module instead of a require that the
    // executable's built-ins-only require would refuse (with a warning) at start.
    b.onResolve({ filter: /^supports-color$/ }, () => ({ path: 'none', namespace: 'empty' }));
    b.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({
      contents: 'module.exports = {};',
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'embedded' }, () => ({
      contents: "module.exports = require('./src/sea/koffi-addon.ts').loadEmbeddedAddon();",
      resolveDir: root,
      loader: 'js',
    }));
  },
};

await build({
  entryPoints: [join(root, 'src/sea/entry.ts')],
  outfile: join(work, 'loopvol.cjs'),
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  define: {
    LOOPVOL_BUILD: JSON.stringify({ version, built: new Date().toISOString() }),
    // Only version.ts's package.json fallback reads it, which LOOPVOL_BUILD makes unreachable.
    'import.meta.url': '"file:///loopvol-sea"',
  },
  plugins: [embeddedKoffi],
  logLevel: 'warning',
});

const config = join(work, 'sea-config.json');
const blob = join(work, 'sea-prep.blob');
writeFileSync(
  config,
  JSON.stringify({
    main: join(work, 'loopvol.cjs'),
    output: blob,
    disableExperimentalSEAWarning: true,
    assets: { 'koffi.node': addon },
  }),
);
execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'inherit' });

const binary = join(out, 'loopvol');
rmSync(binary, { force: true });
copyFileSync(process.execPath, binary);
// postject's ELF library warns about every note section of node's binary: harmless, and dropped
// so that anything else it says stands out.
const injected = spawnSync(
  process.execPath,
  [
    join(root, 'node_modules/postject/dist/cli.js'),
    binary,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { encoding: 'utf8' },
);
const said = `${injected.stdout}${injected.stderr}`
  .split('\n')
  .map((l) => stripVTControlCharacters(l).trim())
  .filter(
    (l) =>
      l && !/Can't find string offset for section name '\.note/.test(l) && !/^(Start injection|💉)/.test(l),
  );
if (said.length > 0) console.error(said.join('\n'));
if (injected.status !== 0) throw new Error(`postject failed (exit ${injected.status})`);
rmSync(join(out, 'dvdcli'), { force: true });
symlinkSync('loopvol', join(out, 'dvdcli'));
console.log(`built ${binary} and ${join(out, 'dvdcli')} (a link to it)`);

// Draws docs/bench.svg from the newest bench/results/*.json with vega-lite (rendered headless,
// no browser): loopvol against its baseline (ratios, with the targets) and request
// latency at scale. Run: npm run bench:chart (after npm run bench).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import { compile } from 'vega-lite';

const dir = new URL('../bench/results/', import.meta.url).pathname;
const newest = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .at(-1);
if (!newest) throw new Error(`no results in ${dir}: run npm run bench first`);
const r = JSON.parse(readFileSync(join(dir, newest), 'utf8'));

const ratios = [
  { what: 'lifecycle, spaced (lower is better)', ratio: r.lifecycle.spaced.ratio, target: 0.6 },
  {
    what: 'lifecycle, back-to-back (lower is better)',
    ratio: r.lifecycle['back-to-back'].ratio,
    target: 0.6,
  },
  { what: '4 concurrent / 1 (throughput)', ratio: r.concurrency.ratio, target: 2 },
  ...Object.entries(r.io.jobs).map(([job, j]) => ({
    what: `fio ${job} (loop / plain)`,
    ratio: j.ratio,
    target: job.startsWith('randwrite') ? 0.6 : 0.9,
  })),
  // Go client (as dockerd): loopvol's p99 over an empty node:http server's, same run.
  ...r.scale.flatMap((s) =>
    s.goClient?.p99Ratio
      ? ['get', 'path'].map((op) => ({
          what: `${op === 'get' ? 'Get' : 'Path'} p99 / empty server, ${s.volumes} volumes (lower is better)`,
          ratio: s.goClient.p99Ratio[op],
          target: s.goClient.target,
        }))
      : [],
  ),
  ...Object.entries(r.io?.fsync?.configs ?? {}).map(([name, c]) => ({
    what: `fio 4k randwrite+fsync, ${name}`,
    ratio: c.ratio,
    target: 0.6,
  })),
  ...Object.entries(r.pgbench?.configs ?? {}).map(([name, c]) => ({
    what: `pgbench tps, ${name}`,
    ratio: c.ratio,
    target: 0.95,
  })),
];
const latency = [
  ...r.scale.flatMap((s) =>
    ['get', 'path'].flatMap((op) =>
      ['p50', 'p99'].map((q) => ({
        request: `${op === 'get' ? 'Get' : 'Path'} ${q}`,
        volumes: `${s.volumes} volumes`,
        ms: s[op][q],
      })),
    ),
  ),
  // The same client against an empty node:http server: this machine's floor.
  ...(r.httpFloor
    ? ['p50', 'p99'].map((q) => ({ request: `empty server ${q}`, volumes: 'HTTP floor', ms: r.httpFloor[q] }))
    : []),
  // The Go client, against loopvol and against the empty server of the same run.
  ...r.scale.flatMap((s) =>
    s.goClient?.loopvol
      ? ['loopvol', 'empty'].flatMap((side) =>
          ['get', 'path'].flatMap((op) =>
            ['p99', 'p999'].map((q) => ({
              request: `Go ${op === 'get' ? 'Get' : 'Path'} ${q === 'p999' ? 'p99.9' : q}`,
              volumes: side === 'loopvol' ? `${s.volumes} volumes` : `empty server (${s.volumes} run)`,
              ms: s.goClient[side][op][q],
            })),
          ),
        )
      : [],
  ),
];

const spec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: `loopvol ${r.mode} benchmark, ${r.date.slice(0, 10)} (${r.machine.cores} cores, kernel ${r.machine.kernel})`,
  hconcat: [
    {
      title: 'Ratios (bar) and targets (tick)',
      data: { values: ratios },
      width: 260,
      layer: [
        {
          mark: 'bar',
          encoding: {
            y: { field: 'what', type: 'nominal', title: null, sort: null, axis: { labelLimit: 320 } },
            x: { field: 'ratio', type: 'quantitative', title: 'ratio' },
          },
        },
        {
          mark: { type: 'tick', color: 'firebrick', thickness: 2 },
          encoding: {
            y: { field: 'what', type: 'nominal', sort: null },
            x: { field: 'target', type: 'quantitative' },
          },
        },
        {
          mark: { type: 'text', align: 'left', dx: 4 },
          encoding: {
            y: { field: 'what', type: 'nominal', sort: null },
            x: { field: 'ratio', type: 'quantitative' },
            text: { field: 'ratio', type: 'quantitative', format: '.2f' },
          },
        },
      ],
    },
    {
      title: 'Request latency at scale (ms)',
      data: { values: latency },
      width: 220,
      mark: 'bar',
      encoding: {
        y: { field: 'request', type: 'nominal', title: null },
        x: { field: 'ms', type: 'quantitative', title: 'ms' },
        color: { field: 'volumes', type: 'nominal', title: null },
        yOffset: { field: 'volumes', type: 'nominal' },
      },
    },
  ],
};

const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
const out = new URL('../docs/bench.svg', import.meta.url).pathname;
writeFileSync(out, await view.toSVG());
console.log(`written ${out} from ${newest}`);

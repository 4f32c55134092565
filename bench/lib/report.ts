import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { abMarkdown, type AbResults } from './ab-report.js';
import { postgresBoundCeiling } from './ceiling.js';
import { startupMarkdown, type StartupResult } from './startup.js';

/* results.json, results.md and the ratio chart (an SVG drawn here, rendered to PNG by resvg). */

export interface ScenarioResult {
  id: string;
  label: string;
  group: 'small' | 'scale';
  available: boolean;
  note?: string;
  rps?: number;
  p50?: number;
  p99?: number;
  requests?: number;
  errors?: number;
  statusCounts?: Record<string, number>;
  /** The mean of the baseline runs just before and after this scenario. */
  baselineRps?: number;
  /** Postgres' CPU per request in those two baseline runs, µs. */
  baselineDbUsPerRequest?: number;
  /**
   * The p99 of those two baseline runs, ms: the host's own floor at this concurrency. A scenario's
   * p99 target is absolute, and on a slow host the bare baseline alone can sit above it.
   */
  baselineP99?: [number, number];
  ratio?: number;
  target: number | null;
  /** The p99 target, ms; 50 when absent. */
  p99TargetMs?: number;
  /** The load generator's CPU during the run, in cores. */
  loadGenCpu?: number;
  serverCpu?: number;
  serverUsPerRequest?: number;
  dbUsPerRequest?: number;
  /** The baseline's route answering this scenario's response body (bench/run.ts: the floor). */
  floor?: PageFloor;
}

/** What a response of this size costs on top of the baseline: its route answering the page instead of the row. */
export interface PageFloor {
  bytes: number;
  rps: number;
  p99: number;
  /** floor req/s over the baseline's (runs before and after it): what the route could reach at best. */
  ratio: number;
  serverUsPerRequest: number;
}

/** Where a run's CPU went: its server process, and every Postgres process. */
export interface CpuPerRequest {
  /** The server process's CPU during the measured run, in cores (1.0 = one core busy). */
  serverCpu: number;
  /** The server process's CPU per request, µs. */
  serverUsPerRequest: number;
  /** Postgres' CPU (all its processes) per request, µs. */
  dbUsPerRequest: number;
}

export interface EmbeddedResult {
  coldStartMs: number;
  get?: { rps: number; p50: number; p99: number; errors: number; baselineRps: number; ratio: number };
  peakRssMb?: number;
}

export interface Results {
  meta: {
    date: string;
    commit: string;
    node: string;
    cpus: number;
    smoke: boolean;
    seconds: number;
    warmupSeconds: number;
    connections: number;
    loadAverageBefore: number[];
    loadAverageAfter: number[];
    seed: { smallKeys: number; scaleKeys: number; scaleEvents: number; seedSeconds: number };
  };
  baselineRuns: ({ rps: number; p50: number; p99: number; errors: number } & Partial<CpuPerRequest>)[];
  scenarios: ScenarioResult[];
  server: { peakRssMb: number; baselinePeakRssMb: number };
  embedded?: EmbeddedResult;
  /** The last A/B run (bench/lib/ab.ts), kept when the normal mode rewrites the file. */
  ab?: AbResults;
  /** The last start-up run (bench/startup.ts), kept when either mode rewrites the file. */
  startup?: StartupResult;
}

const f0 = (n: number | undefined) => (n === undefined ? '–' : Math.round(n).toLocaleString('en-US'));
const f1 = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(1));
const f2 = (n: number | undefined) => (n === undefined ? '–' : n.toFixed(2));

function verdict(s: ScenarioResult): string {
  if (!s.available || s.ratio === undefined) return '';
  const parts: string[] = [];
  if (s.target !== null) parts.push(s.ratio >= s.target ? `≥ ${s.target} ✅` : `≥ ${s.target} ❌`);
  const p99Target = s.p99TargetMs ?? 50;
  const p99Label = p99Target === 50 ? 'p99' : `p99 < ${p99Target}`;
  parts.push((s.p99 ?? 0) < p99Target ? `${p99Label} ✅` : `${p99Label} ❌`);
  return parts.join(' · ');
}

/** The small-table run of a scale scenario (the same route and page). */
const smallTwin = (r: Results, s: ScenarioResult) => r.scenarios.find((x) => x.id === s.id.replace('scale.', 'small.'));

function mainTable(r: Results): string[] {
  const lines = [
    `Measured ${r.meta.date} (commit ${r.meta.commit}), Node ${r.meta.node}, ${r.meta.cpus} cores, ` +
      `${r.meta.connections} connections, ${r.meta.warmupSeconds} s warm-up + ${r.meta.seconds} s per run, ` +
      `load average ${r.meta.loadAverageBefore.map((l) => l.toFixed(1)).join(' / ')} before, ` +
      `${r.meta.loadAverageAfter.map((l) => l.toFixed(1)).join(' / ')} after${r.meta.smoke ? ' — **smoke run, numbers meaningless**' : ''}.`,
    '',
    '| scenario | req/s | p50 ms | p99 ms | errors | baseline req/s | baseline p99 ms | ratio | target | keyplane CPU | keyplane µs/req | Postgres µs/req | autocannon CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const s of r.scenarios) {
    if (!s.available) {
      lines.push(`| ${s.label} | not available | | | | | | | ${s.note ?? ''} | | | | |`);
      continue;
    }
    lines.push(
      `| ${s.label} | ${f0(s.rps)} | ${f1(s.p50)} | ${f1(s.p99)} | ${f0(s.errors)} | ${f0(s.baselineRps)} | ${s.baselineP99 ? s.baselineP99.map(f0).join(' / ') : '–'} | **${f2(s.ratio)}** | ${verdict(s)} | ${f2(s.serverCpu)} | ${f0(s.serverUsPerRequest)} | ${f0(s.dbUsPerRequest)} | ${f2(s.loadGenCpu)} |`,
    );
  }
  return lines;
}

/** The mean of a field over the baseline runs that recorded their CPU. */
function baselineMean(r: Results, f: (b: Results['baselineRuns'][number]) => number): number {
  const base = r.baselineRuns.filter((b) => b.serverUsPerRequest !== undefined);
  return base.length ? base.reduce((a, b) => a + f(b), 0) / base.length : 0;
}

function baselineLine(r: Results): string[] {
  const n = r.baselineRuns.filter((b) => b.serverUsPerRequest !== undefined).length;
  if (!n) return [];
  const mean = (f: (b: Results['baselineRuns'][number]) => number) => baselineMean(r, f);
  return [
    '',
    `The baseline (mean of its ${n} runs): ${f0(mean((b) => b.rps))} req/s, ${f2(mean((b) => b.serverCpu!))} cores, ` +
      `CPU per request ${f0(mean((b) => b.serverUsPerRequest!))} µs in its process + ${f0(mean((b) => b.dbUsPerRequest!))} µs in Postgres.`,
  ];
}

function floorTable(r: Results): string[] {
  const floors = r.scenarios.filter((s) => s.available && s.floor);
  if (!floors.length) return [];
  const lines = [
    '',
    "The response-size floor: the baseline's route (its one SELECT) answering the page each route answered instead of its row, in the same run. Its ratio is what the route could reach if everything else keyplane and Postgres do for it (auth, the page's query and JSON, its event) cost nothing.",
    '',
    '| scenario | body bytes | req/s | p99 ms | ratio (floor) | keyplane ratio | target | baseline app µs/req |',
    '|---|---:|---:|---:|---:|---:|---|---:|',
  ];
  for (const s of floors) {
    const f = s.floor!;
    lines.push(`| ${s.label} | ${f0(f.bytes)} | ${f0(f.rps)} | ${f1(f.p99)} | **${f2(f.ratio)}** | ${f2(s.ratio)} | ${s.target === null ? '–' : `≥ ${s.target}`} | ${f0(f.serverUsPerRequest)} |`);
  }
  return lines;
}

function ceilingTable(r: Results): string[] {
  const meanBaselineDb = baselineMean(r, (b) => b.dbUsPerRequest!);
  // The model's premise is a scenario that asks at least the baseline's work of Postgres (the 401 asks none).
  const bounded = r.scenarios.filter(
    (s) => s.available && s.target !== null && s.baselineRps && s.dbUsPerRequest !== undefined && s.dbUsPerRequest >= (s.baselineDbUsPerRequest ?? meanBaselineDb),
  );
  if (!bounded.length) return [];
  const lines = [
    '',
    "The Postgres-bound ceiling (bench/lib/ceiling.ts): the ratio each scenario would reach if keyplane's process and the client cost no more than the baseline's route answering the same body, with Postgres doing what it does for keyplane now. It errs upward. ✅: the target is under the ceiling, so keyplane's own process decides whether it is met. ❌: the target is out of reach of anything keyplane's process does; only less work in Postgres gets there, and the last column says how much less.",
    '',
    '| scenario | ratio | target | ceiling | Postgres µs/req | baseline Postgres µs/req | Postgres µs/req the target allows |',
    '|---|---:|---|---:|---:|---:|---:|',
  ];
  for (const s of bounded) {
    const baselineDbUs = s.baselineDbUsPerRequest ?? meanBaselineDb;
    // At scale a route answers the same page as on the small tables, whose run measured its floor.
    const floor = s.floor ?? smallTwin(r, s)?.floor;
    const c = postgresBoundCeiling({ cores: r.meta.cpus, baselineRps: s.baselineRps!, baselineDbUs, scenarioDbUs: s.dbUsPerRequest!, floorRatio: floor?.ratio, target: s.target! });
    const mark = c.ratio >= s.target! ? '✅' : '❌';
    lines.push(`| ${s.label} | ${f2(s.ratio)} | ≥ ${s.target} | **${f2(c.ratio)}** ${mark} | ${f0(s.dbUsPerRequest)} | ${f0(baselineDbUs)} | ${c.dbUsForTarget > 0 ? f0(c.dbUsForTarget) : 'none'} |`);
  }
  return lines;
}

function scaleTable(r: Results): string[] {
  const scale = r.scenarios.filter((s) => s.group === 'scale' && s.available);
  if (!scale.length) return [];
  const lines = ['', '| at scale vs small tables | small p50 / p99 ms | scale p50 / p99 ms | p50 factor (target ≤ 1.5) |', '|---|---:|---:|---:|'];
  for (const s of scale) {
    const small = smallTwin(r, s);
    if (!small?.available) continue;
    const factor = (s.p50 ?? 0) / Math.max(small.p50 ?? 1, 0.001);
    lines.push(`| ${small.label} | ${f1(small.p50)} / ${f1(small.p99)} | ${f1(s.p50)} / ${f1(s.p99)} | ${f2(factor)} ${factor <= 1.5 ? '✅' : '❌'} |`);
  }
  return lines;
}

function memoryAndEmbedded(r: Results): string[] {
  const lines = [
    '',
    `Peak RSS of the keyplane process over the whole server-mode run: **${f0(r.server.peakRssMb)} MB** ` +
      `(target < 250; the baseline process: ${f0(r.server.baselinePeakRssMb)} MB).`,
  ];
  if (r.embedded) {
    const e = r.embedded;
    lines.push('', `Embedded (PGlite): \`npm start\` on a fresh DATA_DIR to the first 200 on /healthz: **${(e.coldStartMs / 1000).toFixed(2)} s** (target < 5 s).`);
    if (e.get)
      lines.push(
        `GET /v1/keys/{id} on PGlite: ${f0(e.get.rps)} req/s (p50 ${f1(e.get.p50)} ms, p99 ${f1(e.get.p99)} ms, ${e.get.errors} errors) ` +
          `vs baseline ${f0(e.get.baselineRps)} req/s: ratio **${f2(e.get.ratio)}**; keyplane peak RSS ${f0(e.peakRssMb)} MB.`,
      );
  }
  return lines;
}

export function markdown(r: Results): string {
  const lines = [...mainTable(r), ...baselineLine(r), ...floorTable(r), ...ceilingTable(r), ...scaleTable(r), ...memoryAndEmbedded(r)];
  return `${lines.join('\n')}\n`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal bars: each scenario's ratio to the baseline, with its target as a tick. */
export function chartSvg(r: Results): string {
  const rows = r.scenarios.filter((s) => s.available && s.ratio !== undefined);
  const embedded = r.embedded?.get ? [{ label: 'GET /v1/keys/{id} on PGlite', ratio: r.embedded.get.ratio, target: 0.7 as number | null }] : [];
  const bars = [...rows.map((s) => ({ label: s.label, ratio: s.ratio!, target: s.target })), ...embedded];
  const left = 330;
  const width = 820;
  const barH = 22;
  const gap = 8;
  const top = 64;
  const maxRatio = Math.max(1.2, ...bars.map((b) => b.ratio)) * 1.08;
  const x = (v: number) => left + (v / maxRatio) * (width - left - 60);
  const height = top + bars.length * (barH + gap) + 40;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">keyplane throughput ÷ bare Fastify + one SELECT (same run)</text>`,
    `<text x="${width / 2}" y="44" text-anchor="middle" font-size="12" fill="#555">dashed tick: target · blue: target met or none · red: below target</text>`,
  ];
  for (const v of [0, 0.5, 1, 1.5, 2, 3, 4].filter((t) => t <= maxRatio)) {
    parts.push(`<line x1="${x(v)}" y1="${top - 8}" x2="${x(v)}" y2="${height - 30}" stroke="${v === 1 ? '#888' : '#ddd'}"/>`);
    parts.push(`<text x="${x(v)}" y="${height - 14}" text-anchor="middle" fill="#555">${v}</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * (barH + gap);
    const ok = b.target === null || b.ratio >= b.target;
    parts.push(`<text x="${left - 8}" y="${y + barH / 2 + 4}" text-anchor="end">${esc(b.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, x(b.ratio) - left)}" height="${barH}" fill="${ok ? '#3b7dd8' : '#d8573b'}"/>`);
    parts.push(`<text x="${x(b.ratio) + 5}" y="${y + barH / 2 + 4}">${b.ratio.toFixed(2)}</text>`);
    if (b.target !== null) parts.push(`<line x1="${x(b.target)}" y1="${y - 3}" x2="${x(b.target)}" y2="${y + barH + 3}" stroke="black" stroke-width="2" stroke-dasharray="3,2"/>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function existing(dir: string): Partial<Results> {
  const file = path.join(dir, 'results.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Partial<Results>) : {};
}

/** The normal mode's results; an A/B section already in the directory's results.json is kept. */
export function writeResults(dir: string, r: Results): void {
  const { ab, startup } = existing(dir);
  const all: Results = { ...r, ...(ab ? { ab } : {}), ...(startup ? { startup } : {}) };
  writeFileSync(`${dir}/results.json`, `${JSON.stringify(all, null, 2)}\n`);
  const sections = [markdown(r), ...(ab ? [abMarkdown(ab)] : []), ...(startup ? [startupMarkdown(startup)] : [])];
  writeFileSync(`${dir}/results.md`, sections.join('\n'));
  const svg = chartSvg(r);
  writeFileSync(`${dir}/results.svg`, svg);
  const png = new Resvg(svg, { fitTo: { mode: 'width', value: 820 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  writeFileSync(`${dir}/results.png`, png);
}

/** An A/B run's section of results.{json,md}, beside (or replacing) the last one; the normal mode's results stay. */
export function writeAbResults(dir: string, ab: AbResults): void {
  const before = existing(dir);
  writeFileSync(`${dir}/results.json`, `${JSON.stringify({ ...before, ab }, null, 2)}\n`);
  const normal = before.meta && before.scenarios ? `${markdown(before as Results)}\n` : '';
  const startup = before.startup ? `\n${startupMarkdown(before.startup)}` : '';
  writeFileSync(`${dir}/results.md`, normal + abMarkdown(ab) + startup);
}

/*
 * The A/B section of bench/results.{json,md}: two builds of keyplane measured in one run, A the
 * given ref, B the working tree. The headline is the CPU each request costs (Postgres first: on a
 * 2-core host a route's ceiling is set by what it asks of Postgres), then throughput.
 */

/** One measured run of one side. */
export interface AbRun {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  serverCpu: number;
  serverUsPerRequest: number;
  dbUsPerRequest: number;
}

export interface AbScenario {
  id: string;
  label: string;
  available: boolean;
  note?: string;
  /** The runs of each side, in the order they ran: a[i] just before b[i]. */
  a: AbRun[];
  b: AbRun[];
}

export interface AbResults {
  meta: {
    date: string;
    host: string;
    cpuModel: string;
    cpus: number;
    node: string;
    a: { ref: string; commit: string; modules: string };
    b: { commit: string };
    pairs: number;
    seconds: number;
    warmupSeconds: number;
    connections: number;
    smoke: boolean;
    loadAverageBefore: number[];
    loadAverageAfter: number[];
    seedSeconds: { a: number; b: number };
    /** Seconds from the start of the A/B run to the end of its last measurement. */
    wallSeconds: number;
    notes: string[];
  };
  scenarios: AbScenario[];
  peakRssMb: { a: number; b: number };
  /** Embedded mode, `npm start` on a fresh DATA_DIR to the first 200 on /healthz, each run, ms. */
  coldStartMs?: { a: number[]; b: number[] };
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2) : NaN;
};
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const f1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : '–');
const pct = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%` : '–');

/** B over A per pair, for one field. */
function perPair(s: AbScenario, field: keyof AbRun): number[] {
  return s.a.map((a, i) => (s.b[i]![field] as number) / (a[field] as number)).filter(Number.isFinite);
}

/** "+4.2% (−1.0% … +9.3%)": B's mean over A's, and the range of the per-pair changes. */
function change(s: AbScenario, field: keyof AbRun): string {
  const whole = mean(s.b.map((r) => r[field] as number)) / mean(s.a.map((r) => r[field] as number)) - 1;
  const pairs = perPair(s, field).map((r) => r - 1);
  if (pairs.length < 2) return `**${pct(whole)}**`;
  return `**${pct(whole)}** (${pct(Math.min(...pairs))} … ${pct(Math.max(...pairs))})`;
}

function ratio(s: AbScenario): string {
  const whole = mean(s.b.map((r) => r.rps)) / mean(s.a.map((r) => r.rps));
  const pairs = perPair(s, 'rps');
  const r = Number.isFinite(whole) ? whole.toFixed(2) : '–';
  return pairs.length < 2 ? `**${r}**` : `**${r}** (${Math.min(...pairs).toFixed(2)} … ${Math.max(...pairs).toFixed(2)})`;
}

function row(s: AbScenario): string {
  if (!s.available) return `| ${s.label} | ${s.note ?? 'not available'} |${' |'.repeat(11)}`;
  const m = (side: AbRun[], field: keyof AbRun) => mean(side.map((r) => r[field] as number));
  const both = (field: keyof AbRun, f: (n: number) => string) => `${f(m(s.a, field))} / ${f(m(s.b, field))}`;
  return [
    s.label,
    f0(m(s.a, 'dbUsPerRequest')),
    f0(m(s.b, 'dbUsPerRequest')),
    change(s, 'dbUsPerRequest'),
    f0(m(s.a, 'serverUsPerRequest')),
    f0(m(s.b, 'serverUsPerRequest')),
    change(s, 'serverUsPerRequest'),
    f0(m(s.a, 'rps')),
    f0(m(s.b, 'rps')),
    ratio(s),
    both('p50', f1),
    both('p99', f1),
    `${s.a.reduce((n, r) => n + r.errors, 0)} / ${s.b.reduce((n, r) => n + r.errors, 0)}`,
  ]
    .join(' | ')
    .replace(/^/, '| ')
    .concat(' |');
}

export function abMarkdown(r: AbResults): string {
  const m = r.meta;
  const lines = [
    `## A/B: the working tree (B, ${m.b.commit}) against ${m.a.ref} (A, ${m.a.commit.slice(0, 7)})`,
    '',
    `Measured ${m.date} on ${m.host} (${m.cpuModel}, ${m.cpus} cores), Node ${m.node}: ${m.pairs} pair${m.pairs === 1 ? '' : 's'} A B per scenario, ` +
      `${m.warmupSeconds} s warm-up + ${m.seconds} s per run, ${m.connections} connections; both servers up for the whole run, each on its own database of the same Postgres, ` +
      `seeded the same way (A ${m.seedSeconds.a.toFixed(1)} s, B ${m.seedSeconds.b.toFixed(1)} s); ${Math.round(m.wallSeconds)} s in all; ` +
      `load average ${m.loadAverageBefore.map((l) => l.toFixed(1)).join(' / ')} before, ${m.loadAverageAfter.map((l) => l.toFixed(1)).join(' / ')} after` +
      `${m.smoke ? ' — **smoke run, numbers meaningless**' : ''}.`,
    '',
    'Values are means over the pairs; a change is B over A, with the range of the per-pair changes in brackets. ' +
      'Postgres µs/req is the CPU of every Postgres process on the host during the run over its requests (another client of the same Postgres shows up in it).',
    '',
    '| scenario | Postgres µs/req A | B | change | keyplane µs/req A | B | change | req/s A | B | B/A | p50 ms A / B | p99 ms A / B | errors A / B |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...r.scenarios.map(row),
    '',
    `Peak RSS over the server-mode run: A ${f0(r.peakRssMb.a)} MB, B ${f0(r.peakRssMb.b)} MB.`,
  ];
  if (r.coldStartMs) {
    const c = r.coldStartMs;
    const runs = (xs: number[]) => xs.map((x) => (x / 1000).toFixed(2)).join(', ');
    lines.push(
      '',
      `Embedded cold start (\`npm start\` in each checkout on a fresh DATA_DIR to the first 200 on /healthz, interleaved A B): ` +
        `A median **${(median(c.a) / 1000).toFixed(2)} s** (${runs(c.a)}), B median **${(median(c.b) / 1000).toFixed(2)} s** (${runs(c.b)}).`,
    );
  }
  for (const n of m.notes) lines.push('', n);
  return `${lines.join('\n')}\n`;
}

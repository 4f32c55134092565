import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { adminQuery, BENCH_SERVER_URL, databaseUrlFor } from './admin-db.js';
import { runEmbedded } from './embedded.js';
import { CONNECTIONS, once, type Recipe } from './load.js';
import { gitCommit, log, ROOT, type Options } from './options.js';
import { memoryOf, type Child } from './proc.js';
import { writeResults, type Results, type ScenarioResult } from './report.js';
import { scenarios, type Scenario } from './scenarios.js';
import { ADMIN_TOKEN, HIGH_LIMITS, measure, profilingFlags, startBaseline, startKeyplane, type Keyplane, type Run } from './servers.js';
import { buildWorld } from './world.js';

/*
 * The normal mode: keyplane against the baseline app (bare Fastify + one SELECT by primary key on the
 * same pool settings), each in its own child process, on one database. Every scenario run is
 * preceded and followed by a baseline run (B S1 B S2 B …), so machine drift hits both; a scenario's
 * ratio is its req/s over the mean of its two neighbouring baseline runs. For the large pages (list,
 * audit) it also measures the response-size floor: the baseline's route answering the page keyplane
 * answered instead of its row, between two baseline runs. Then the embedded-mode measurements.
 */

const SMALL_KEYS = 60;

interface Ctx {
  o: Options;
  kp: Keyplane;
  base: { child: Child; origin: string };
  baseRecipe: Recipe;
  baselineRuns: Run[];
  readKeyId: string;
}

const run = (c: Ctx, origin: string, r: Recipe, pid: number) => measure(origin, r, pid, c.o.seconds, c.o.warmup);

/**
 * The page as the run left it, answered by the baseline's route instead of its row, between two
 * baseline runs (the second is the next scenario's "before").
 */
async function floorOf(c: Ctx, s: Scenario, after: Run): Promise<NonNullable<ScenarioResult['floor']>> {
  const o = c.kp.origins[s.listener];
  const page = await once(o, s.recipe.method, s.recipe.path, s.recipe.headers);
  const stored = await once(c.base.origin, 'PUT', `/baseline/pages/${s.id}`, { 'content-type': 'text/plain' }, page.text);
  if (page.status !== 200 || stored.status !== 204) throw new Error(`page for the floor: ${page.status}, stored ${stored.status}`);
  const f = await run(c, c.base.origin, { method: 'GET', path: `/baseline/pages/${s.id}/${c.readKeyId}`, headers: {}, expect: 200 }, c.base.child.pid);
  const next = await run(c, c.base.origin, c.baseRecipe, c.base.child.pid);
  c.baselineRuns.push(next);
  const ratio = f.rps / ((after.rps + next.rps) / 2);
  log(`${s.id} floor (the baseline answering its ${Buffer.byteLength(page.text)}-byte body): ${f.rps.toFixed(0)} req/s, ratio ${ratio.toFixed(2)}`);
  return { bytes: Buffer.byteLength(page.text), rps: f.rps, p99: f.p99, ratio, serverUsPerRequest: f.serverUsPerRequest };
}

async function runScenario(c: Ctx, s: Scenario): Promise<ScenarioResult> {
  const o = c.kp.origins[s.listener];
  const probe = await once(o, s.recipe.method, s.recipe.path, s.recipe.headers, s.recipe.body ?? s.recipe.next?.().body);
  if (probe.status === 404 && s.recipe.expect !== 404 && !s.id.endsWith('rotate')) {
    log(`${s.id}: not available (404)`);
    return { id: s.id, label: s.label, group: s.group, available: false, note: 'route not in this build (404)', target: s.target };
  }
  const m = await run(c, o, s.recipe, c.kp.child.pid);
  const before = c.baselineRuns[c.baselineRuns.length - 1]!;
  const after = await run(c, c.base.origin, c.baseRecipe, c.base.child.pid);
  c.baselineRuns.push(after);
  const baselineRps = (before.rps + after.rps) / 2;
  const baselineDbUsPerRequest = (before.dbUsPerRequest + after.dbUsPerRequest) / 2;
  const baselineP99: [number, number] = [before.p99, after.p99];
  const result: ScenarioResult = { id: s.id, label: s.label, group: s.group, available: true, ...m, baselineRps, baselineDbUsPerRequest, baselineP99, ratio: m.rps / baselineRps, target: s.target, p99TargetMs: s.p99TargetMs };
  if (s.floor) result.floor = await floorOf(c, s, after);
  // A 5xx is a bug, not a number: show what the server logged about it.
  if (Object.keys(m.statusCounts).some((code) => code.startsWith('5'))) log(`${s.id} answered 5xx; server log tail:\n${c.kp.child.output().slice(-3000)}`);
  log(
    `${s.id}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, errors ${m.errors}, ratio ${(m.rps / baselineRps).toFixed(2)} ` +
      `(baseline ${baselineRps.toFixed(0)} req/s, p99 ${baselineP99.join(' and ')} ms); ` +
      `CPU µs/request keyplane ${m.serverUsPerRequest.toFixed(0)}, Postgres ${m.dbUsPerRequest.toFixed(0)} (baseline ${after.serverUsPerRequest.toFixed(0)} + ${after.dbUsPerRequest.toFixed(0)})`,
  );
  return result;
}

function scaleOf(o: Options) {
  // Scale: the 100,000 keys under one service key and 1,000,000 events; the smoke run seeds
  // a hundredth of that to exercise the same code.
  return o.scale ? { keys: o.smoke ? 1_000 : 100_000, events: o.smoke ? 10_000 : 1_000_000 } : undefined;
}

async function measureAll(o: Options, url: string, children: Child[]): Promise<Omit<Results, 'meta' | 'embedded'> & { seedSeconds: number }> {
  const kp = await startKeyplane('keyplane', ROOT, url, profilingFlags(ROOT, o.argv));
  children.push(kp.child);
  const base = await startBaseline(ROOT, url);
  children.push(base.child);
  // Rotations: each pool key is rotated once. 40k covers ~3,000 rotations/s for 13 s.
  const { world, seedSeconds } = await buildWorld({ origins: kp.origins, databaseUrl: url, adminToken: ADMIN_TOKEN, smallKeys: SMALL_KEYS, rotatePool: o.smoke ? 2_000 : 40_000, scale: scaleOf(o), log });
  log(`seeded in ${seedSeconds.toFixed(1)} s`);
  const baseRecipe: Recipe = { method: 'GET', path: `/baseline/keys/${world.readKeyId}`, headers: {}, expect: 200 };
  const c: Ctx = { o, kp, base, baseRecipe, baselineRuns: [], readKeyId: world.readKeyId };
  c.baselineRuns.push(await run(c, base.origin, baseRecipe, base.child.pid));
  log(`baseline: ${c.baselineRuns[0]!.rps.toFixed(0)} req/s`);
  const results: ScenarioResult[] = [];
  for (const s of scenarios(world).filter((x) => !o.only || o.only.includes(x.id))) results.push(await runScenario(c, s));
  const server = { peakRssMb: memoryOf(kp.child.pid).peakMb, baselinePeakRssMb: memoryOf(base.child.pid).peakMb };
  const baselineRuns = c.baselineRuns.map(({ rps, p50, p99, errors, serverCpu, serverUsPerRequest, dbUsPerRequest }) => ({ rps, p50, p99, errors, serverCpu, serverUsPerRequest, dbUsPerRequest }));
  return { baselineRuns, scenarios: results, server, seedSeconds };
}

export async function runNormal(o: Options): Promise<void> {
  const loadBefore = os.loadavg();
  const dbName = `keyplane_bench_${Date.now().toString(36)}_${process.pid}`;
  const url = databaseUrlFor(dbName);
  const children: Child[] = [];
  await adminQuery(`create database ${dbName}`);
  try {
    const m = await measureAll(o, url, children);
    for (const ch of children.splice(0)) await ch.stop();
    const embedded = o.embedded ? await runEmbedded(ROOT, HIGH_LIMITS, o.seconds, o.warmup, log) : undefined;
    const scale = scaleOf(o);
    const out: Results = {
      meta: {
        date: new Date().toISOString(),
        commit: gitCommit(ROOT),
        node: process.version,
        cpus: os.cpus().length,
        smoke: o.smoke,
        seconds: o.seconds,
        warmupSeconds: o.warmup,
        connections: CONNECTIONS,
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
        seed: { smallKeys: SMALL_KEYS, scaleKeys: scale?.keys ?? 0, scaleEvents: scale?.events ?? 0, seedSeconds: m.seedSeconds },
      },
      baselineRuns: m.baselineRuns,
      scenarios: m.scenarios,
      server: m.server,
      embedded,
    };
    // A smoke run proves the bench works; its numbers must not overwrite the committed results.
    const dir = o.out ?? (o.smoke ? path.join(os.tmpdir(), 'keyplane-bench-smoke') : path.join(ROOT, 'bench'));
    mkdirSync(dir, { recursive: true });
    writeResults(dir, out);
    log(`wrote ${dir}/results.{json,md,svg,png}`);
  } finally {
    for (const ch of children) await ch.stop();
    await adminQuery(`drop database if exists ${dbName} with (force)`, BENCH_SERVER_URL).catch((err: Error) => log(`could not drop ${dbName}: ${err.message}`));
  }
}

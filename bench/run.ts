/*
 * npm run bench [-- --smoke] [-- --seconds=N] [-- --no-scale] [-- --no-embedded] [-- --only=small.get,…]
 *               [-- --profile]   (keyplane runs with --cpu-prof; profiles land in bench/profiles/)
 *
 * keyplane in server mode on its own, uniquely named database of the local Postgres
 * (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres; created and dropped
 * here), and a baseline (bench/baseline.server.ts: bare Fastify + one SELECT by primary key on the
 * same pool settings), each in its own child process. Every scenario run is preceded and followed
 * by a baseline run (B S1 B S2 B …), so machine drift hits both; a scenario's ratio is its req/s
 * over the mean of its two neighbouring baseline runs. For the large pages (list, audit) it also
 * measures the response-size floor: the baseline's route (its one SELECT) answering the page
 * keyplane answered instead of its row, between two baseline runs. Then the embedded-mode measurements.
 * Writes bench/results.{json,md,svg,png}.
 */
import { execSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../src/db/database.js';
import { runEmbedded } from './lib/embedded.js';
import { adminQuery as adminSql, databaseUrlFor } from './lib/admin-db.js';
import { CONNECTIONS, drive, once, type Measured, type Recipe } from './lib/load.js';
import { cpuSecondsOf, freePort, memoryOf, postgresCpu, postgresCpuSecondsSince, startChild, waitForOk, type Child } from './lib/proc.js';
import { writeResults, type CpuPerRequest, type Results, type ScenarioResult } from './lib/report.js';
import { scenarios, type World } from './lib/scenarios.js';
import { makeTenant, seedChildKeys, seedClient, seedEvents, verifyChainSlice } from './lib/seed.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const option = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];

const SMOKE = flag('smoke');
// 10 s measured after a 3 s warm-up (the minimum); the smoke run only proves the bench runs.
const SECONDS = Number(option('seconds') ?? (SMOKE ? 1 : 10));
const WARMUP = SMOKE ? 0 : 3;
const ONLY = option('only')?.split(',');
// Scale: the 100,000 keys under one service key and 1,000,000 events; the smoke run seeds
// a hundredth of that to exercise the same code.
const SCALE_KEYS = SMOKE ? 1_000 : 100_000;
const SCALE_EVENTS = SMOKE ? 10_000 : 1_000_000;
const SMALL_KEYS = 60;
// Rotations: each pool key is rotated once. 40k covers ~3,000 rotations/s for 13 s.
const ROTATE_POOL = SMOKE ? 2_000 : 40_000;
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ADMIN_TOKEN = 'bench-operator-token-0123456789abcdefghijklmnop';
/** Rate limits raised far beyond what one machine can send: the bench measures work, not 429s. */
const HIGH = '1000000000/1';
const HIGH_LIMITS: NodeJS.ProcessEnv = Object.fromEntries(
  ['KEYS_MINT', 'KEYS_LIST', 'KEYS_GET', 'KEYS_UPDATE', 'KEYS_REVOKE', 'KEYS_ROTATE', 'AUDIT_READ', 'AGENTS_SELF_ROTATE', 'AUTH_FAILURES'].map((n) => [
    `RATE_LIMIT_${n}`,
    HIGH,
  ]),
);

const log = (s: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);


async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  const dbName = `keyplane_bench_${Date.now().toString(36)}_${process.pid}`;
  const url = databaseUrlFor(dbName, SERVER_URL);
  const children: Child[] = [];
  await adminSql(`create database ${dbName}`, SERVER_URL);
  try {
    // ---- the world -------------------------------------------------------------------------
    const seedStart = performance.now();
    const database = await openDatabase({ databaseUrl: url, poolMax: 2 });
    await database.migrate();
    const c = await seedClient(url);
    const read = await makeTenant(database.db, 'bench read');
    const readKeyIds = await seedChildKeys(c, read, SMALL_KEYS, 'read');
    const mint = await makeTenant(database.db, 'bench mint');
    const rotate = await makeTenant(database.db, 'bench rotate');
    const rotatePool = await seedChildKeys(c, rotate, ROTATE_POOL, 'rotate');
    let scale: World['scale'];
    if (!flag('no-scale')) {
      const t = await makeTenant(database.db, 'bench scale');
      const ids = await seedChildKeys(c, t, SCALE_KEYS, 'scale');
      log(`seeded ${SCALE_KEYS} keys; seeding ${SCALE_EVENTS} chained events…`);
      const head = Number((await c.query<{ s: string }>('select chain_seq as s from accounts where id = $1', [t.accountId])).rows[0]!.s);
      await seedEvents(c, t, SCALE_EVENTS);
      // The seams of the seeded history: where it joins the live chain, and its last links.
      await verifyChainSlice(c, t.accountId, head - 1, head + 3);
      await verifyChainSlice(c, t.accountId, head + SCALE_EVENTS - 3, head + SCALE_EVENTS);
      scale = { tenant: t, keyId: ids[Math.floor(ids.length / 2)]! };
    }
    await c.query('vacuum analyze');
    // The seed wrote ~1 GB of WAL and dirty pages; without a checkpoint here the checkpointer writes
    // them out during the first measured runs, and its CPU and I/O land on those scenarios (a run
    // without it: GET /v1/keys/{id} 0.63, Postgres 144 µs per request against 77-95 elsewhere).
    await c.query('checkpoint');
    await c.end();
    await database.close();
    const seedSeconds = (performance.now() - seedStart) / 1000;
    log(`seeded in ${seedSeconds.toFixed(1)} s`);

    // ---- the two servers -------------------------------------------------------------------
    const port = await freePort();
    const adminPort = await freePort();
    const bport = await freePort();
    const nodeArgs = flag('profile')
      ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, 'bench/profiles')}`]
      : flag('perf')
        ? // --perf-basic-prof also makes V8 write a log of its heap: keep it out of the checkout.
          ['--perf-basic-prof', '--no-logfile-per-isolate', `--logfile=${path.join(os.tmpdir(), 'keyplane-bench-v8.log')}`]
        : [];
    const server = startChild(
      'keyplane',
      process.execPath,
      // The same node flags as `npm start` (package.json): the heap limit is part of how keyplane runs.
      [...nodeArgs, '--max-old-space-size=192', '--import', 'tsx', 'src/main.ts'],
      {
        ...process.env,
        ...HIGH_LIMITS,
        DATABASE_URL: url,
        HOST: '127.0.0.1',
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
        KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN,
        LOG_LEVEL: 'warn',
      },
      ROOT,
    );
    children.push(server);
    const baseline = startChild(
      'baseline',
      process.execPath,
      ['--import', 'tsx', 'bench/baseline.server.ts'],
      { ...process.env, BASELINE_DATABASE_URL: url, BASELINE_PORT: String(bport), BASELINE_POOL_MAX: '10' },
      ROOT,
    );
    children.push(baseline);
    const t0 = performance.now();
    await waitForOk(`http://127.0.0.1:${port}/healthz`, server, t0);
    await waitForOk(`http://127.0.0.1:${bport}/healthz`, baseline, t0);
    const origin = { public: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${adminPort}` };
    const bOrigin = `http://127.0.0.1:${bport}`;

    // A child key with a plaintext, for the verify scenarios (when that route exists).
    const auth = { authorization: `Bearer ${mint.serviceKey}`, 'content-type': 'application/json' };
    const minted = await once(origin.public, 'POST', '/v1/keys', { ...auth, 'idempotency-key': 'bench-verify-key' }, JSON.stringify({ name: 'verify' }));
    if (minted.status !== 201) throw new Error(`mint answered ${minted.status}: ${minted.text}`);
    const verifyKey = (JSON.parse(minted.text) as { key: { plaintext_key: string } }).key.plaintext_key;
    const verifyProbe = await once(origin.admin, 'POST', '/internal/v1/verify', { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }, JSON.stringify({ key: verifyKey, verb: 'read' }));

    const world: World = { read, readKeyId: readKeyIds[0]!, mint, rotate, rotatePool, scale, adminToken: ADMIN_TOKEN, verifyKey: verifyProbe.status === 200 ? verifyKey : undefined };
    const all = scenarios(world).filter((s) => !ONLY || ONLY.includes(s.id));
    const baseRecipe: Recipe = { method: 'GET', path: `/baseline/keys/${world.readKeyId}`, headers: {}, expect: 200 };

    // ---- interleaved runs ------------------------------------------------------------------
    // Each measured run also records the CPU its server process and Postgres used, per request:
    // where a scenario's cost goes, against the baseline's.
    const measure = async (o: string, r: Recipe, pid: number): Promise<Measured & CpuPerRequest> => {
      if (WARMUP > 0) await drive(o, r, WARMUP);
      const server0 = cpuSecondsOf(pid);
      const db0 = postgresCpu();
      const m = await drive(o, r, SECONDS);
      const perRequest = (s: number) => (m.requests > 0 ? (s * 1e6) / m.requests : 0);
      const serverSeconds = cpuSecondsOf(pid) - server0;
      return { ...m, serverCpu: serverSeconds / SECONDS, serverUsPerRequest: perRequest(serverSeconds), dbUsPerRequest: perRequest(postgresCpuSecondsSince(db0)) };
    };
    const baselineRuns = [await measure(bOrigin, baseRecipe, baseline.pid)];
    log(`baseline: ${baselineRuns[0]!.rps.toFixed(0)} req/s`);
    const results: ScenarioResult[] = [];
    for (const s of all) {
      const o = origin[s.listener];
      const probe = await once(o, s.recipe.method, s.recipe.path, s.recipe.headers, s.recipe.body ?? (s.recipe.next?.().body));
      if (probe.status === 404 && s.recipe.expect !== 404 && !s.id.endsWith('rotate')) {
        results.push({ id: s.id, label: s.label, group: s.group, available: false, note: 'route not in this build (404)', target: s.target });
        log(`${s.id}: not available (404)`);
        continue;
      }
      const m = await measure(o, s.recipe, server.pid);
      const before = baselineRuns[baselineRuns.length - 1]!;
      const after = await measure(bOrigin, baseRecipe, baseline.pid);
      baselineRuns.push(after);
      const baselineRps = (before.rps + after.rps) / 2;
      const baselineDbUsPerRequest = (before.dbUsPerRequest + after.dbUsPerRequest) / 2;
      const baselineP99: [number, number] = [before.p99, after.p99];
      results.push({ id: s.id, label: s.label, group: s.group, available: true, ...m, baselineRps, baselineDbUsPerRequest, baselineP99, ratio: m.rps / baselineRps, target: s.target, p99TargetMs: s.p99TargetMs });
      if (s.floor) {
        // A page as the run left it (the audit feed has grown to a full page), answered by the
        // baseline's route instead of its row, between two baseline runs (the second is the next
        // scenario's "before").
        const page = await once(o, s.recipe.method, s.recipe.path, s.recipe.headers);
        const stored = await once(bOrigin, 'PUT', `/baseline/pages/${s.id}`, { 'content-type': 'text/plain' }, page.text);
        if (page.status !== 200 || stored.status !== 204) throw new Error(`page for the floor: ${page.status}, stored ${stored.status}`);
        const f = await measure(bOrigin, { method: 'GET', path: `/baseline/pages/${s.id}/${world.readKeyId}`, headers: {}, expect: 200 }, baseline.pid);
        const next = await measure(bOrigin, baseRecipe, baseline.pid);
        baselineRuns.push(next);
        const floorRatio = f.rps / ((after.rps + next.rps) / 2);
        results[results.length - 1]!.floor = { bytes: Buffer.byteLength(page.text), rps: f.rps, p99: f.p99, ratio: floorRatio, serverUsPerRequest: f.serverUsPerRequest };
        log(`${s.id} floor (the baseline answering its ${Buffer.byteLength(page.text)}-byte body): ${f.rps.toFixed(0)} req/s, ratio ${floorRatio.toFixed(2)}`);
      }
      // A 5xx is a bug, not a number: show what the server logged about it.
      if (Object.keys(m.statusCounts).some((code) => code.startsWith('5'))) log(`${s.id} answered 5xx; server log tail:\n${server.output().slice(-3000)}`);
      log(
        `${s.id}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms, errors ${m.errors}, ratio ${(m.rps / baselineRps).toFixed(2)} ` +
          `(baseline ${baselineRps.toFixed(0)} req/s, p99 ${baselineP99.join(' and ')} ms); ` +
          `CPU µs/request keyplane ${m.serverUsPerRequest.toFixed(0)}, Postgres ${m.dbUsPerRequest.toFixed(0)} (baseline ${after.serverUsPerRequest.toFixed(0)} + ${after.dbUsPerRequest.toFixed(0)})`,
      );
    }
    const serverMem = memoryOf(server.pid);
    const baselineMem = memoryOf(baseline.pid);
    for (const ch of children.splice(0)) await ch.stop();

    const embedded = flag('no-embedded') ? undefined : await runEmbedded(ROOT, HIGH_LIMITS, SECONDS, WARMUP, log);

    const out: Results = {
      meta: {
        date: new Date().toISOString(),
        commit: gitCommit(),
        node: process.version,
        cpus: os.cpus().length,
        smoke: SMOKE,
        seconds: SECONDS,
        warmupSeconds: WARMUP,
        connections: CONNECTIONS,
        loadAverageBefore: loadBefore,
        loadAverageAfter: os.loadavg(),
        seed: { smallKeys: SMALL_KEYS, scaleKeys: scale ? SCALE_KEYS : 0, scaleEvents: scale ? SCALE_EVENTS : 0, seedSeconds },
      },
      baselineRuns: baselineRuns.map(({ rps, p50, p99, errors, serverCpu, serverUsPerRequest, dbUsPerRequest }) => ({ rps, p50, p99, errors, serverCpu, serverUsPerRequest, dbUsPerRequest })),
      scenarios: results,
      server: { peakRssMb: serverMem.peakMb, baselinePeakRssMb: baselineMem.peakMb },
      embedded,
    };
    // A smoke run proves the bench works; its numbers must not overwrite the committed results.
    const dir = option('out') ?? (SMOKE ? path.join(os.tmpdir(), 'keyplane-bench-smoke') : path.join(ROOT, 'bench'));
    mkdirSync(dir, { recursive: true });
    writeResults(dir, out);
    log(`wrote ${dir}/results.{json,md,svg,png}`);
  } finally {
    for (const ch of children) await ch.stop();
    await adminSql(`drop database if exists ${dbName} with (force)`, SERVER_URL).catch((err) => log(`could not drop ${dbName}: ${err.message}`));
  }
}

function gitCommit(): string {
  try {
    const dirty = execSync('git status --porcelain --untracked-files=no', { cwd: ROOT }).toString().trim() ? '+dirty' : '';
    return execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim() + dirty;
  } catch {
    return 'unknown';
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

/*
 * Micro-benchmark: POST /internal/v1/verify (without cost with the bootstrap operator token, without
 * cost with a named `verify` token, and with a debit) against a bare Fastify route doing one SELECT
 * by primary key, interleaved in the same run against the same Postgres, so that the ratios do not
 * depend on the machine. Beside req/s it reports the CPU per request of keyplane's process and of
 * the Postgres backends of the bench's own database (so other load on the server does not count). Issue 9's targets: verify ≥ 0.8× the baseline's
 * throughput, verify with a debit ≥ 0.4×, p99 < 20 ms, at 50 connections.
 *
 *   npx tsx bench/verify.bench.ts            # Postgres at DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONNECTIONS=50 BENCH_KEYS=50 npx tsx bench/verify.bench.ts
 *
 * It creates a throwaway database on that server and drops it afterwards. Bounded: rounds × 3
 * scenarios × seconds (default 3 × 3 × 5 s), plus a short warm-up.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { adminQuery, databaseUrlFor } from './lib/admin-db.js';
import { cpuSecondsOf } from './lib/proc.js';

const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const keyCount = Number(process.env.BENCH_KEYS ?? 50);
const poolMax = Number(process.env.BENCH_POOL_MAX ?? 10);

const dbName = `keyplane_bench_${Date.now().toString(36)}_${process.pid}`;
const benchUrl = databaseUrlFor(dbName, serverUrl);

interface Ready {
  adminPort: number;
  barePort: number;
  keys: { id: string; plaintext: string }[];
  verifyToken: string;
}

const SCENARIOS = ['baseline', 'verify', 'verify:named', 'verify+debit'] as const;
type Scenario = (typeof SCENARIOS)[number];
interface Sample {
  rps: number;
  requests: number;
  /** CPU µs per request: keyplane's process, and the bench database's Postgres backends. */
  keyplaneUs: number;
  postgresUs: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

function run(ready: Ready, scenario: Scenario, duration: number): Promise<Sample> {
  const token = randomBytes(4).toString('hex');
  let n = 0;
  const next = () => ready.keys[n++ % ready.keys.length]!;
  const opts: autocannon.Options =
    scenario === 'baseline'
      ? {
          url: `http://127.0.0.1:${ready.barePort}`,
          requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/baseline/${next().id}` }) }],
        }
      : {
          url: `http://127.0.0.1:${ready.adminPort}`,
          headers: { authorization: `Bearer ${scenario === 'verify:named' ? ready.verifyToken : adminToken}`, 'content-type': 'application/json' },
          requests: [
            {
              method: 'POST',
              path: '/internal/v1/verify',
              setupRequest: (req) => {
                const key = next().plaintext;
                const body =
                  scenario !== 'verify+debit'
                    ? { key, verb: 'call' }
                    : { key, verb: 'call', cost_cents: 1, request_id: `bench-${token}-${n}` };
                return { ...req, body: JSON.stringify(body) };
              },
            },
          ],
        };
  return new Promise((resolve, reject) => {
    const pgPids = backends;
    const before = { keyplane: cpuSecondsOf(child.pid!), postgres: cpuOfPids(pgPids) };
    autocannon({ ...opts, connections, duration }, (err, r) => {
      if (err) return reject(err);
      const n = r.requests.total;
      const perRequest = (seconds: number) => (n > 0 ? (seconds * 1e6) / n : 0);
      resolve({
        rps: r.requests.average,
        requests: n,
        keyplaneUs: perRequest(cpuSecondsOf(child.pid!) - before.keyplane),
        postgresUs: perRequest(cpuOfPids(pgPids) - before.postgres),
        p50: r.latency.p50,
        p99: r.latency.p99,
        non2xx: r.non2xx,
        errors: r.errors + r.timeouts,
      });
    });
  });
}

/** CPU seconds so far of these processes (a backend that has gone counts nothing). */
function cpuOfPids(pids: number[]): number {
  let s = 0;
  for (const pid of pids) {
    try {
      s += cpuSecondsOf(pid);
    } catch {
      // The backend closed.
    }
  }
  return s;
}

/** The Postgres backends connected to the bench's database (the server's pool, once warm). */
async function backendsOf(url: string, db: string): Promise<number[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [db]);
    return rows.map((r) => r.pid);
  } finally {
    await c.end();
  }
}
let backends: number[] = [];

const adminToken = randomBytes(24).toString('hex');
await adminQuery(`create database "${dbName}"`, serverUrl);
const child = fork(path.join(path.dirname(fileURLToPath(import.meta.url)), 'verify-server.ts'), {
  execArgv: ['--import', 'tsx'],
  env: { ...process.env, BENCH_DB_URL: benchUrl, BENCH_ADMIN_TOKEN: adminToken, BENCH_KEYS: String(keyCount), BENCH_POOL_MAX: String(poolMax) },
});
try {
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once('message', (m) => resolve(m as Ready));
    child.once('exit', (code) => reject(new Error(`bench server exited (${code})`)));
  });
  process.stdout.write(`verify bench: ${connections} connections, pool ${poolMax}, ${keyCount} keys, ${rounds} rounds × ${seconds} s per scenario, interleaved\n`);
  for (const s of SCENARIOS) await run(ready, s, 1); // warm-up
  backends = await backendsOf(benchUrl, dbName);

  const results: Record<Scenario, Sample[]> = { baseline: [], verify: [], 'verify:named': [], 'verify+debit': [] };
  for (let round = 0; round < rounds; round++) {
    for (const s of SCENARIOS) {
      const r = await run(ready, s, seconds);
      results[s].push(r);
      process.stdout.write(
        `  round ${round + 1} ${s.padEnd(13)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${r.p50} ms  p99 ${r.p99} ms  keyplane ${r.keyplaneUs.toFixed(0)} µs/req  postgres ${r.postgresUs.toFixed(0)} µs/req  non-2xx ${r.non2xx}  errors ${r.errors}\n`,
      );
    }
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = mean(results.baseline.map((r) => r.rps));
  process.stdout.write('\nscenario       req/s (mean)  ratio  worst p99  keyplane µs/req  postgres µs/req  target\n');
  for (const [s, target] of [['baseline', null], ['verify', 0.8], ['verify:named', 0.8], ['verify+debit', 0.4]] as const) {
    const rps = mean(results[s].map((r) => r.rps));
    const p99 = Math.max(...results[s].map((r) => r.p99));
    const failures = results[s].reduce((a, r) => a + r.non2xx + r.errors, 0);
    const cpu = (f: (r: Sample) => number) => mean(results[s].map(f)).toFixed(0).padStart(15);
    const verdict = target === null ? '' : `≥ ${target}× ${rps / base >= target && p99 < 20 && failures === 0 ? 'met' : 'NOT met'}`;
    process.stdout.write(
      `${s.padEnd(14)} ${rps.toFixed(0).padStart(12)}  ${(rps / base).toFixed(2).padStart(5)}  ${String(p99).padStart(6)} ms  ${cpu((r) => r.keyplaneUs)}  ${cpu((r) => r.postgresUs)}  ${verdict}\n`,
    );
  }
} finally {
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
  await adminQuery(`drop database if exists "${dbName}" with (force)`, serverUrl);
}

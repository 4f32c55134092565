/*
 * The cost of the Redis counter store against the in-process one, on GET /v1/keys, in one run.
 *
 *   npx tsx bench/rate-limit-store.ts            (env: BENCH_PG, BENCH_REDIS, DURATION_S, CONCURRENCY)
 *
 * Creates a database of its own on the local Postgres (dropped at the end), one account and service
 * key and 50 child keys (a full default page), and runs `keyplane serve` with in-memory counters and
 * with REDIS_URL, the list limit raised out of the way. The client is this process: plain node:http
 * with keep-alive, each response read in full.
 *
 * 1. paired (the headline): both servers up at once; each of CONCURRENCY workers sends one request
 *    to the memory server, then one to the Redis server, and so on, so whatever else loads the
 *    machine falls on both alike. Latency per store.
 * 2. rounds: each server alone, in turn (memory, redis, memory, …): throughput, drift visible.
 * 3. micro: the counter operations a request makes (read + incr), sequentially, no HTTP.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openDatabase, systemClock, MemoryCounterStore, RedisCounterStore, type CounterStore, portal, probeWorld } from './lib/keyplane.js';

const PG = process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS = process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379';
const DURATION_S = Number(process.env.DURATION_S ?? 10);
/** 16 in flight saturates one keyplane process on a 2-core machine without queueing in the pool for long. */
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);
const WARMUP_S = 2;
/** Alternating rounds per store; on a shared, loaded machine the median of several is what to read. */
const ROUNDS = Number(process.env.ROUNDS ?? 2);
/** Sequential counter operations for the per-request cost, measured without HTTP or Postgres. */
const MICRO_OPS = 5_000;
const ROOT = path.resolve(import.meta.dirname, '..');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function serve(env: Record<string, string>) {
  const port = await freePort();
  const child = spawn(process.execPath, ['bin/keyplane.js', 'serve'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 300) throw new Error('server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function stats(latencies: number[], seconds: number) {
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => +latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(2);
  return { n: latencies.length, rps: Math.round(latencies.length / seconds), p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99) };
}

function get(agent: http.Agent, port: number, token: string): Promise<{ ms: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get(
      { host: '127.0.0.1', port, path: '/v1/keys', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode! }));
      },
    );
    req.on('error', reject);
  });
}

/** Both servers at once, every worker alternating between them. */
async function paired(ports: { memory: number; redis: number }, token: string, seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
  const lat = { memory: [] as number[], redis: [] as number[] };
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (w: number) => {
    // Half the workers start with memory, half with redis, so neither always goes first.
    const order = w % 2 ? (['memory', 'redis'] as const) : (['redis', 'memory'] as const);
    while (performance.now() < end) {
      for (const store of order) {
        const r = await get(agent, ports[store], token);
        if (r.status === 200) lat[store].push(r.ms);
        else errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  return { memory: stats(lat.memory, elapsed), redis: stats(lat.redis, elapsed), non_200: errors };
}

async function load(port: number, token: string, seconds: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const end = performance.now() + seconds * 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const t0 = performance.now();
      const req = http.get(
        { host: '127.0.0.1', port, path: '/v1/keys', agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => {
            latencies.push(performance.now() - t0);
            statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
            resolve();
          });
        },
      );
      req.on('error', reject);
    });
  const worker = async () => {
    while (performance.now() < end) await one();
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!;
  return { rps: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), n: latencies.length, statuses: Object.fromEntries(statuses) };
}

/** Microseconds per request for the two counter operations a limited request makes (read + incr). */
async function microCost(prefix: string) {
  const log = { warn: () => {} } as never;
  const redis = await RedisCounterStore.open({ url: REDIS, keyPrefix: `${prefix}micro:`, connectTimeoutMs: 500, commandTimeoutMs: 100, clock: systemClock, log });
  const memory = new MemoryCounterStore(systemClock);
  const op = (s: CounterStore, f: 'incr' | 'read', key: string) => new Promise<void>((resolve) => s[f](key, () => resolve(), 3_600_000, 1e9));
  const time = async (s: CounterStore) => {
    for (let i = 0; i < 500; i++) await op(s, 'incr', 'warm');
    const t0 = performance.now();
    for (let i = 0; i < MICRO_OPS; i++) {
      await op(s, 'read', 'auth.failures:127.0.0.1');
      await op(s, 'incr', 'keys.list:bench');
    }
    return +(((performance.now() - t0) * 1000) / MICRO_OPS).toFixed(1);
  };
  const result = { memory: await time(memory), redis: await time(redis) };
  await redis.close();
  return result;
}

/** One account and service key on `url`, with 50 child keys minted through keyplane (a realistic page). */
async function seed(url: string): Promise<string> {
  const database = await openDatabase({ databaseUrl: url, poolMax: 2 });
  await database.migrate();
  const { store } = await probeWorld(database);
  const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'bench' }, meta: { requestId: null, ip: null, userAgent: 'bench' }, now: new Date() };
  const account = await portal.createAccount(store, 'bench', ctx);
  const sk = await portal.createServiceKey(store, { accountId: account.id, environment: 'test', name: 'bench' }, ctx);
  await database.close();
  const seeder = await serve({ DATABASE_URL: url, RATE_LIMIT_KEYS_MINT: '1000/3600' });
  try {
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`http://127.0.0.1:${seeder.port}/v1/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${sk.plaintext}`, 'content-type': 'application/json', 'idempotency-key': `seed-${i}` },
        body: JSON.stringify({ name: `agent ${i}`, agent_label: `bench:${i}` }),
      });
      if (res.status !== 201) throw new Error(`seeding failed: ${res.status}`);
    }
  } finally {
    await seeder.stop();
  }
  return sk.plaintext;
}

type Round = { store: string; round: number; rps: number; p50: number; p99: number; n: number; statuses: object };

/** Both stores side by side, then ROUNDS rounds of each alone. */
async function measureStores(stores: Record<string, Record<string, string>>, key: string) {
  const both = { memory: await serve(stores.memory!), redis: await serve(stores.redis!) };
  let pairedResult;
  try {
    await paired({ memory: both.memory.port, redis: both.redis.port }, key, WARMUP_S);
    pairedResult = await paired({ memory: both.memory.port, redis: both.redis.port }, key, DURATION_S);
    process.stderr.write(`paired: ${JSON.stringify(pairedResult)}\n`);
  } finally {
    await Promise.all([both.memory.stop(), both.redis.stop()]);
  }
  const results: Round[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const store of ['memory', 'redis']) {
      const server = await serve(stores[store]!);
      try {
        await load(server.port, key, WARMUP_S);
        const r = await load(server.port, key, DURATION_S);
        results.push({ store, round, ...r });
        process.stderr.write(`${store} round ${round}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms\n`);
      } finally {
        await server.stop();
      }
    }
  }
  return { pairedResult, results };
}

async function summarise(pairedResult: unknown, results: Round[], prefix: string) {
  const mean = (store: string, f: 'rps' | 'p50' | 'p99') => {
    const xs = results.filter((r) => r.store === store).map((r) => r[f]).sort((a, b) => a - b);
    return xs[Math.floor(xs.length / 2)]!; // the median round
  };
  const micro = await microCost(prefix);
  return {
    route: 'GET /v1/keys (50 keys per page)',
    concurrency: CONCURRENCY,
    duration_s: DURATION_S,
    load_average_at_end: (await import('node:os')).loadavg().map((x) => +x.toFixed(1)),
    paired: pairedResult,
    rounds: results.map((r) => ({ ...r, rps: Math.round(r.rps), p50: +r.p50.toFixed(2), p99: +r.p99.toFixed(2) })),
    memory: { rps: Math.round(mean('memory', 'rps')), p50_ms: +mean('memory', 'p50').toFixed(2), p99_ms: +mean('memory', 'p99').toFixed(2) },
    redis: { rps: Math.round(mean('redis', 'rps')), p50_ms: +mean('redis', 'p50').toFixed(2), p99_ms: +mean('redis', 'p99').toFixed(2) },
    redis_vs_memory_rps_pct: +((mean('redis', 'rps') / mean('memory', 'rps') - 1) * 100).toFixed(1),
    // What a request pays for its counters: the auth-failure check (read) plus the route's count (incr).
    per_request_counter_cost_us: micro,
  };
}

async function dropRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
  redis.disconnect();
}

async function main() {
  const dbName = `keyplane_bench_rl_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG });
  await admin.connect();
  await admin.query(`create database "${dbName}"`);
  const url = new URL(PG);
  url.pathname = `/${dbName}`;
  const prefix = `keyplane:bench:${dbName}:`;
  try {
    const key = await seed(url.toString());
    const common = { DATABASE_URL: url.toString(), RATE_LIMIT_KEYS_LIST: '1000000000/3600', RATE_LIMIT_AUTH_FAILURES: '1000000000/60' };
    const stores: Record<string, Record<string, string>> = {
      memory: common,
      redis: { ...common, REDIS_URL: REDIS, REDIS_KEY_PREFIX: prefix },
    };
    const { pairedResult, results } = await measureStores(stores, key);
    process.stdout.write(`${JSON.stringify(await summarise(pairedResult, results, prefix), null, 2)}\n`);
  } finally {
    await admin.query(`drop database if exists "${dbName}" with (force)`);
    await admin.end();
    await dropRedisKeys(prefix);
  }
}

await main();

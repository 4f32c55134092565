/*
 * What recording verification activity costs verify (issue 32: at least 95 % of the throughput
 * kept). In one process against one Postgres database: the same verify service built twice, once
 * counting answers (the default: a Map increment per answer, flushed in one statement every
 * VERIFY_ACTIVITY_FLUSH_MS) and once not, driven by the same number of concurrent callers in
 * interleaved rounds, so that machine noise falls on both. In-process (no HTTP), so the recorder's
 * share of the work is as large as it can be.
 *
 *   npx tsx bench/verify-activity.ts      # BENCH_DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres
 *   BENCH_SECONDS=5 BENCH_ROUNDS=3 BENCH_CONCURRENCY=50 BENCH_KEYS=50 npx tsx bench/verify-activity.ts
 *
 * Creates a throwaway database and drops it afterwards.
 */
import { adminQuery, databaseUrlFor } from './lib/admin-db.js';
import { authenticate, mintChildKeyTx, openDatabase, portal, prepareKeyMaterial, probeWorld, withEvents } from './lib/keyplane.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 50);
const keyCount = Number(process.env.BENCH_KEYS ?? 50);
const flushMs = 5_000;

const dbName = `keyplane_bench_activity_${Date.now().toString(36)}_${process.pid}`;
await adminQuery(`create database ${dbName}`);
const database = await openDatabase({ databaseUrl: databaseUrlFor(dbName), poolMax: 10 });
try {
  await database.migrate();
  const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'bench' }, meta: { requestId: null, ip: null, userAgent: 'bench' }, now: new Date() };
  const { store } = await probeWorld(database);
  const account = await portal.createAccount(store, 'bench', ctx);
  const sk = await portal.createServiceKey(store, { accountId: account.id, environment: 'test', name: 'bench' }, ctx);
  const principal = await authenticate(database.db, sk.plaintext, 'service', { readOnly: false, now: new Date() });
  if (principal.tier !== 'service') throw new Error('expected a service principal');
  const keys: string[] = [];
  for (let i = 0; i < keyCount; i++) {
    const material = await prepareKeyMaterial('test', false);
    const input = { name: `agent-${i}`, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
    await withEvents(store, principal.accountId, (tx) => mintChildKeyTx(tx, principal, input, material, ctx));
    keys.push(material.token.plaintext);
  }
  const on = (await probeWorld(database)).services;
  const off = (await probeWorld(database, { recordVerifyActivity: false })).services;

  async function run(services: typeof on, recording: boolean): Promise<number> {
    const timer = recording ? setInterval(() => void services.maintenance.flushActivity(), flushMs) : undefined;
    const end = Date.now() + seconds * 1000;
    let done = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async (_, c) => {
        for (let i = c; Date.now() < end; i += concurrency) {
          const r = await services.verify.verify({ key: keys[i % keys.length]!, verb: 'call' }, new Date());
          if (!r.valid) throw new Error(`verify refused: ${r.code}`);
          done++;
        }
      }),
    );
    clearInterval(timer);
    if (recording) await services.maintenance.flushActivity();
    return done / seconds;
  }

  await run(off, false);
  await run(on, true);
  const results = { on: [] as number[], off: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    results.off.push(await run(off, false));
    results.on.push(await run(on, true));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ratio = median(results.on) / median(results.off);
  const [counted] = await database.pool!.query('select coalesce(sum(count), 0)::int as n from verify_activity').then((r) => r.rows as { n: number }[]);
  console.log(JSON.stringify({ seconds, rounds, concurrency, keys: keyCount, verify_per_s_off: results.off.map(Math.round), verify_per_s_on: results.on.map(Math.round), ratio: Number(ratio.toFixed(3)), counted: counted!.n }));
  console.log(`verify with activity recording keeps ${(ratio * 100).toFixed(1)} % of its throughput (target ≥ 95 %)`);
  if (ratio < 0.95) process.exitCode = 1;
} finally {
  await database.close();
  await adminQuery(`drop database if exists ${dbName}`);
}

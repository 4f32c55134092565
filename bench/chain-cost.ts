/*
 * The cost of the compliance hash chain, measured in one run against Postgres.
 *
 *   npm run bench:chain            (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
 *
 * Creates a throwaway database, one busy account with 20 child keys, and runs N concurrent workers
 * for a fixed time in alternating rounds:
 *   - list read, chained:   listChildKeys (select page + count + event insert, then a shared linking
 *                           round for the account), exactly what GET /v1/keys runs;
 *   - list read, unchained: the same select + count + an INSERT of the same event with a sequence
 *                           number from a Postgres sequence, not touching the accounts row;
 *   - event write, chained / unchained: the event alone, the same two ways.
 * Then prints the feed query's plan for one key on the account's (by then large) history.
 * BENCH_SECONDS (default 5) per round, BENCH_CONCURRENCY (default 16), 2 rounds per mode.
 */
import { and, count, desc, eq, isNull, sql } from 'drizzle-orm';
import { adminQuery as admin, databaseUrlFor } from './lib/admin-db.js';
import { openDatabase, type Database, type Db, EventLinker, queryRows, apiKeys, authenticate, type ServicePrincipal, listChildKeys, mintChildKeyTx, prepareKeyMaterial, type OpContext, eventFields, withEvents, canonicalEvent, recordEvent, type EventInput, portal } from './lib/keyplane.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 16);
const dbName = `keyplane_bench_${Date.now().toString(36)}`;


/** The same event recordEvent writes, inserted without the chain: seq from a sequence, no account row. */
async function plainInsert(db: Db, input: EventInput): Promise<void> {
  const fields = { ...eventFields(input), data: input.data };
  const { id } = fields;
  const canonical = canonicalEvent(fields);
  await db.execute(sql`
    insert into compliance_events
      (id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind, actor_key_id,
       actor_key_prefix, subject_key_id, related_key_id, request_id, ip, user_agent, data, created_at)
    values (${id}, ${input.accountId}, nextval('bench_plain_seq'), '', ${canonical.length.toString()}, ${input.eventType},
            ${input.environment}, ${input.actor.kind}, ${input.actor.keyId}, ${input.actor.keyPrefix}, null, null,
            ${input.meta.requestId}, ${input.meta.ip}, ${input.meta.userAgent}, ${JSON.stringify(input.data)}::jsonb,
            ${input.createdAt.toISOString()}::timestamptz)`);
}

async function measure(name: string, op: () => Promise<unknown>) {
  const latencies: number[] = [];
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        const t0 = performance.now();
        await op();
        latencies.push(performance.now() - t0);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(2);
  return { name, ops: latencies.length, perSecond: latencies.length / seconds, p50: pct(0.5), p99: pct(0.99) };
}

/** The four ways to do the work, on one account with a service key that minted 20 keys. */
async function setup(database: Database) {
  const db = database.db;
  const store = { db, linker: new EventLinker(database.linkerDb) };
  const ctx = (): OpContext => ({ actor: { kind: 'portal', keyId: null, keyPrefix: 'bench' }, meta: { requestId: null, ip: '127.0.0.1', userAgent: 'bench' }, now: new Date() });
  const account = await portal.createAccount(store, 'busy', ctx());
  const sk = await portal.createServiceKey(store, { accountId: account.id, environment: 'test', name: 'svc' }, ctx());
  const principal = (await authenticate(db, sk.plaintext, 'service', { readOnly: true, now: new Date() })) as ServicePrincipal;
  const svcCtx = (): OpContext => ({ actor: { kind: 'service_key', keyId: principal.id, keyPrefix: principal.keyPrefix }, meta: { requestId: 'bench', ip: '127.0.0.1', userAgent: 'bench' }, now: new Date() });
  for (let i = 0; i < 20; i++) {
    const material = await prepareKeyMaterial('test', false);
    const input = { name: `agent ${i}`, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
    await withEvents(store, principal.accountId, (tx) => mintChildKeyTx(tx, principal, input, material, svcCtx()));
  }
  const active = and(eq(apiKeys.accountId, principal.accountId), eq(apiKeys.createdByServiceKeyId, principal.id), isNull(apiKeys.revokedAt));
  const event = (data: Record<string, unknown>): EventInput => {
    const c = svcCtx();
    return { accountId: account.id, eventType: 'service_key_list_read', environment: 'test', actor: c.actor, meta: c.meta, data, createdAt: c.now };
  };
  const modes: Record<string, () => Promise<unknown>> = {
    'list read, chained': () => listChildKeys(store, principal, { limit: 50, offset: 0 }, svcCtx()),
    'list read, unchained': () =>
      db.transaction(async (tx) => {
        const rows = await tx.select().from(apiKeys).where(active).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).limit(50);
        const [n] = await tx.select({ n: count() }).from(apiKeys).where(active);
        await plainInsert(tx as unknown as Db, event({ count: rows.length, total: Number(n?.n ?? 0), limit: 50, offset: 0 }));
      }),
    'event write, chained': () => withEvents(store, account.id, (tx) => recordEvent(tx, event({ count: 0 }))),
    'event write, unchained': () => db.transaction((tx) => plainInsert(tx as unknown as Db, event({ count: 0 }))),
  };
  return { account, principal, modes };
}

async function runModes(modes: Record<string, () => Promise<unknown>>): Promise<void> {
  process.stdout.write(`chain cost: ${concurrency} workers, ${seconds}s rounds, one account, Postgres ${dbName}\n`);
  const totals = new Map<string, { ops: number; rounds: string[] }>();
  for (let round = 0; round < 2; round++) {
    for (const [name, op] of Object.entries(modes)) {
      const r = await measure(name, op);
      const entry = totals.get(name) ?? { ops: 0, rounds: [] };
      entry.ops += r.ops;
      entry.rounds.push(`${r.perSecond.toFixed(0)}/s p50 ${r.p50}ms p99 ${r.p99}ms`);
      totals.set(name, entry);
    }
  }
  for (const [name, e] of totals) {
    process.stdout.write(`${name.padEnd(24)} ${(e.ops / (2 * seconds)).toFixed(0).padStart(6)} ops/s   (${e.rounds.join(' | ')})\n`);
  }
}

/** The audit feed's plan for a page deep in the busiest key's history. */
async function printFeedPlan(db: Db, accountId: string, keyId: string): Promise<void> {
  const [n] = await queryRows<{ n: string }>(db, sql`select count(*) as n from compliance_events where account_id = ${accountId}`);
  process.stdout.write(`\naccount history: ${n!.n} events. Feed query plan (page of 100 from the 5000th newest event of the busiest key):\n`);
  await db.execute(sql`analyze compliance_events`);
  const [mid] = await queryRows<{ id: string }>(
    db,
    sql`select id from compliance_events where account_id = ${accountId} and actor_key_id = ${keyId} order by created_at desc, id desc offset 5000 limit 1`,
  );
  const branch = (column: string) => `(select e.* from compliance_events e
      where e.account_id = '${accountId}' and e.${column} = '${keyId}'
        and (e.created_at, e.id) < (select c.created_at, c.id from compliance_events c where c.account_id = '${accountId}' and c.id = '${mid!.id}')
      order by e.created_at desc, e.id desc limit 101)`;
  const plan = await queryRows<{ 'QUERY PLAN': string }>(
    db,
    sql.raw(`explain (analyze, costs off, timing off, summary on)
      select * from (${branch('actor_key_id')} union ${branch('subject_key_id')} union ${branch('related_key_id')}) feed
      order by feed.created_at desc, feed.id desc limit 101`),
  );
  for (const row of plan) process.stdout.write(`  ${row['QUERY PLAN']}\n`);
}

async function main() {
  await admin(`create database "${dbName}"`);
  const database = await openDatabase({ databaseUrl: databaseUrlFor(dbName), poolMax: concurrency });
  try {
    await database.migrate();
    const db = database.db;
    await db.execute(sql`create sequence bench_plain_seq start 1000000000000`);
    const { account, principal, modes } = await setup(database);
    await runModes(modes);
    // The service key is the actor of every list read above: the busiest feed the account has.
    await printFeedPlan(db, account.id, principal.id);
  } finally {
    await database.close();
    await admin(`drop database if exists "${dbName}" with (force)`);
  }
}

await main();

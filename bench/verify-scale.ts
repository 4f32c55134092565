/*
 * `audit verify` on a long chain: builds one account with BENCH_EVENTS events (default 1,000,000)
 * in a throwaway Postgres database, chained exactly as recordEvent chains them (computed here in
 * batches and bulk-inserted, which is much faster than a million transactions), then times
 * verifyChains and reports the process's peak memory, which must not grow with the chain.
 *
 *   BENCH_EVENTS=1000000 npx tsx bench/verify-scale.ts
 */
import { sql } from 'drizzle-orm';
import { openDatabase, queryRows, verifyChains, newId, canonicalEvent, chainHash, type ChainedFields, portal, probeWorld } from './lib/keyplane.js';
import { adminQuery as admin, databaseUrlFor } from './lib/admin-db.js';

const total = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const dbName = `keyplane_verify_${Date.now().toString(36)}`;
/** Rows per INSERT: 17 parameters a row stays under Postgres's 65,535-parameter limit. */
const INSERT_BATCH = 2_000;


type Database = Awaited<ReturnType<typeof openDatabase>>;

/** One event of the chain, as recordEvent would have recorded it at `seq`. */
function eventAt(accountId: string, seq: number, base: number): ChainedFields {
  return {
    id: newId(),
    accountId,
    eventType: 'service_key_list_read',
    environment: 'test',
    actorKind: 'portal',
    actorKeyId: null,
    actorKeyPrefix: 'bench',
    subjectKeyId: null,
    relatedKeyId: null,
    requestId: `r${seq}`,
    ip: '127.0.0.1',
    userAgent: 'bench',
    data: { count: seq % 50, total: 50, limit: 50, offset: 0 },
    createdAt: new Date(base + seq),
  };
}

/** Continues the account's chain from its head up to `total` events, INSERT_BATCH rows a statement. */
async function buildChain(database: Database, accountId: string): Promise<number> {
  const [head] = await queryRows<{ chain_seq: string; chain_head: string }>(database.db, sql`select chain_seq, chain_head from accounts where id = ${accountId}`);
  let seq = Number(head!.chain_seq);
  let prev = head!.chain_head;
  const base = Date.now();
  while (seq < total) {
    const rows: string[] = [];
    const params: unknown[] = [];
    for (let i = 0; i < INSERT_BATCH && seq < total; i++) {
      seq++;
      const f = eventAt(accountId, seq, base);
      const hash = chainHash(prev, seq, canonicalEvent(f));
      const p = params.length;
      rows.push(`(${Array.from({ length: 15 }, (_, k) => `$${p + k + 1}`).join(',')})`);
      params.push(f.id, f.accountId, seq, prev, hash, f.eventType, f.environment, f.actorKind, f.actorKeyPrefix, f.requestId, f.ip, f.userAgent, JSON.stringify(f.data), f.createdAt.toISOString(), null);
      prev = hash;
    }
    await database.pool!.query(
      `insert into compliance_events (id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind, actor_key_prefix, request_id, ip, user_agent, data, created_at, subject_key_id) values ${rows.join(',')}`,
      params,
    );
  }
  await database.pool!.query(`update accounts set chain_seq = $2, chain_head = $3 where id = $1`, [accountId, seq, prev]);
  return seq;
}

async function main() {
  await admin(`create database "${dbName}"`);
  const database = await openDatabase({ databaseUrl: databaseUrlFor(dbName), poolMax: 2 });
  try {
    await database.migrate();
    const db = database.db;
    const { store } = await probeWorld(database);
    const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'bench' }, meta: { requestId: null, ip: null, userAgent: 'bench' }, now: new Date() };
    const account = await portal.createAccount(store, 'long chain', ctx);
    // createAccount wrote seq 1; the chain continues from its head.
    const t0 = performance.now();
    const seq = await buildChain(database, account.id);
    process.stdout.write(`built ${seq} chained events in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
    const t1 = performance.now();
    const v = await verifyChains(db, { accountId: account.id });
    const took = (performance.now() - t1) / 1000;
    clearInterval(timer);
    process.stdout.write(
      `verify: ${v.events} events in ${took.toFixed(1)} s (${Math.round(v.events / took)} events/s), first break: ${JSON.stringify(v.firstBreak)}\n` +
        `rss before ${Math.round(rssBefore / 2 ** 20)} MiB, peak during verify ${Math.round(peak / 2 ** 20)} MiB\n`,
    );
  } finally {
    await database.close();
    await admin(`drop database if exists "${dbName}" with (force)`);
  }
}

await main();

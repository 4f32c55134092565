/*
 * The audit feed's Postgres cost with billing items (issue 30), measured with EXPLAIN ANALYZE.
 *
 *   npm run bench:feed       (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres;
 *                             BENCH_ITEMS, default 2000: debits and compliance events of the key)
 *
 * Creates a throwaway database and one agent key with BENCH_ITEMS debits and about as many events
 * (its audit reads), interleaved; then runs the feed statement (a page of 100, its audit_read
 * included) 40 times per filter and prints the median Postgres execution time and shared buffers:
 * `event_types=compliance_event` (no ledger rows: the feed's cost before billing items), billing
 * items only, both merged, both with exclude=audit_read (a filter of the walk) and with both reads
 * excluded (the *_noreads_idx walk), and a page deep in the history (cursor).
 */
import pino from 'pino';
import { adminQuery as admin, databaseUrlFor } from './lib/admin-db.js';
import { actorOf, authenticate, buildAdminApp, buildApp, createServices, explainAuditFeed, LIMIT_NAMES, openDatabase } from './lib/keyplane.js';

const items = Number(process.env.BENCH_ITEMS ?? 2000);
const dbName = `keyplane_bench_feed_${Date.now().toString(36)}`;
const ADMIN = 'bench-feed-admin-token-0123456789abcdef0123456789';

async function main() {
  await admin(`create database "${dbName}"`);
  const database = await openDatabase({ databaseUrl: databaseUrlFor(dbName) });
  try {
    await database.migrate();
    const rule = { max: 10_000_000, windowSeconds: 3600 };
    const deps = { services: createServices(database), logger: pino({ level: 'silent' }), rateLimit: { limits: Object.fromEntries(LIMIT_NAMES.map((n) => [n, rule])), authFailures: rule } };
    const app = await buildApp(deps);
    const adminApp = await buildAdminApp({ ...deps, adminToken: ADMIN });
    const inj = async (a: typeof app, method: string, url: string, token: string, body?: unknown) =>
      (await a.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: body === undefined ? undefined : JSON.stringify(body) })).json();
    const boot = await inj(adminApp, 'POST', '/internal/v1/bootstrap', ADMIN, { name: 'feed bench' });
    const key = (await (await app.inject({ method: 'POST', url: '/v1/keys', headers: { authorization: `Bearer ${boot.service_key}`, 'content-type': 'application/json', 'idempotency-key': 'feed-1' }, payload: '{"name":"spender"}' })).json()).key;
    for (let i = 0; i < items; i++) {
      await inj(adminApp, 'POST', '/internal/v1/verify', ADMIN, { key: key.plaintext_key, verb: 'call', cost_cents: 1, request_id: `r${i}` });
      await inj(app, 'GET', '/v1/audit?limit=1', key.plaintext_key);
    }
    await database.db.execute('analyze' as never);
    const principal = await authenticate(database.db, key.plaintext_key, 'api', { readOnly: true, now: new Date() });
    if (principal.tier !== 'api') throw new Error('expected an API key');
    const deep = await inj(app, 'GET', `/v1/audit?limit=500&exclude=audit_read`, key.plaintext_key);
    const cursor = deep.events[deep.events.length - 1].id as string;
    const variants = [
      ['events only (before issue 30)', { eventTypes: ['compliance_event'] as const, exclude: null, before: null }],
      ['billing items only', { eventTypes: ['billing_transaction'] as const, exclude: null, before: null }],
      ['both, merged', { eventTypes: null, exclude: null, before: null }],
      ['both, exclude=audit_read', { eventTypes: null, exclude: ['audit_read'], before: null }],
      ['both, exclude both reads', { eventTypes: null, exclude: ['audit_read', 'agent_self_read'], before: null }],
      ['both, deep cursor', { eventTypes: null, exclude: null, before: cursor }],
    ] as const;
    process.stdout.write(`feed of one key: ${items} debits, ${items + 2} events; a page of 100, 40 runs each (median)\n`);
    for (const [label, v] of variants) {
      const times: number[] = [];
      let buffers = '';
      for (let run = 0; run < 40; run++) {
        const ctx = { actor: actorOf(principal), meta: { requestId: null, ip: null, userAgent: 'bench' }, now: new Date() };
        const plan = await explainAuditFeed(database.db, principal, { apiKeyId: 'self', limit: 100, eventTypes: v.eventTypes ? [...v.eventTypes] : null, exclude: v.exclude ? [...v.exclude] : null, before: v.before }, ctx, true);
        times.push(Number(/Execution Time: ([\d.]+) ms/.exec(plan)![1]));
        buffers = /Buffers: (shared [^\n]*)/.exec(plan)?.[1] ?? '';
      }
      times.sort((a, b) => a - b);
      process.stdout.write(`${label.padEnd(32)} ${(times[20]! * 1000).toFixed(0).padStart(6)} µs   (${buffers.trim()})\n`);
    }
    await Promise.all([app.close(), adminApp.close()]);
  } finally {
    await database.close();
    await admin(`drop database if exists "${dbName}" with (force)`);
  }
}

await main();

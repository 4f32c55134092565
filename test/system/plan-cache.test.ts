import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { queryRows } from '../../src/db/statements.js';
import { createFleetDatabase } from '../support/fleet.js';
import { ADMIN_TOKEN, call, createTenant, createTestApp, recordSecrets, type TestApp } from '../support/harness.js';
import { requires } from '../support/requirements.js';

const { it } = await requires(['postgres']);

/*
 * Server mode plans each prepared statement once per connection (src/db/client.ts: plan_cache_mode).
 * Plan caching is a behaviour of Postgres sessions, which the embedded database does not have, so
 * this test runs on a database of its own on the machine's Postgres whichever database the run uses,
 * with a pool of one connection so that every statement it runs is in the session it inspects.
 */

let fresh: Awaited<ReturnType<typeof createFleetDatabase>>;
let t: TestApp;
beforeAll(async () => {
  fresh = await createFleetDatabase('plans');
  const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 1 });
  await database.migrate();
  t = await createTestApp({ database });
});
afterAll(async () => {
  await t?.close();
  await t?.database.close();
  await fresh?.drop();
});

interface PreparedRow {
  name: string;
  statement: string;
  generic_plans: number;
  custom_plans: number;
}

it('the hot statements run on a generic plan from their first execution, never re-planned per request', async () => {
  const tenant = await createTenant(t);
  const READS = 8;
  for (let i = 0; i < READS; i++) {
    const minted = await call(t.app, 'POST', '/v1/keys', {
      token: tenant.serviceKey,
      body: { name: `plan ${i}` },
      headers: { 'idempotency-key': `plan-${i}-${Math.random()}` },
    });
    expect(minted.status).toBe(201);
    expect((await call(t.app, 'GET', `/v1/keys/${minted.body.key.id}`, { token: tenant.serviceKey })).status).toBe(200);
    const list = await call(t.app, 'GET', '/v1/keys?limit=50', { token: tenant.serviceKey });
    expect(list.status).toBe(200);
    expect(list.body.keys).toHaveLength(i + 1);
    const audit = await call(t.app, 'GET', '/v1/audit?limit=100', { token: tenant.apiKey });
    expect(audit.status).toBe(200);
    expect(audit.body.events.length).toBeGreaterThan(0);
  }
  const rows = await queryRows<PreparedRow>(
    t.database.db,
    sql`select name, statement, generic_plans::int as generic_plans, custom_plans::int as custom_plans
          from pg_prepared_statements where name like 'kp\_%' order by name`,
  );
  // Under Postgres's default (plan_cache_mode = auto) each of these is planned with its values on its
  // first five runs (measured here: 5 custom plans each); on the bench's tables the CTE statements
  // stayed on custom plans for every run.
  const replanned = rows.filter((r) => r.custom_plans > 0).map((r) => `${r.name}: ${r.custom_plans} custom plans\n${r.statement}`);
  expect(replanned, replanned.join('\n\n')).toEqual([]);
  const feed = rows.find((r) => r.statement.includes('keyplane_audit_item'));
  const list = rows.find((r) => r.statement.includes('from api_keys') && r.statement.includes('count'));
  expect(feed?.generic_plans).toBe(READS);
  expect(list?.generic_plans).toBeGreaterThanOrEqual(READS);
  expect(rows.length).toBeGreaterThanOrEqual(4);
});

it('the debit batch plans its own statements once, whatever the session (src/db/sql/verify_debit_batch.sql)', async () => {
  const fns = await queryRows<{ name: string; config: string[] }>(
    t.database.db,
    sql`select proname as name, proconfig as config from pg_proc
         where proname like 'keyplane_verify_debit_batch%' order by proname`,
  );
  expect(fns.map((f) => f.name)).toEqual(['keyplane_verify_debit_batch']);
  for (const fn of fns) expect(fn.config).toEqual(expect.arrayContaining(['enable_seqscan=off', 'plan_cache_mode=force_generic_plan']));
  const [session] = await queryRows<{ mode: string; seqscan: string; bitmapscan: string; jit: string }>(
    t.database.db,
    sql`select current_setting('plan_cache_mode') as mode, current_setting('enable_seqscan') as seqscan,
               current_setting('enable_bitmapscan') as bitmapscan, current_setting('jit') as jit`,
  );
  expect(session).toEqual({ mode: 'force_generic_plan', seqscan: 'off', bitmapscan: 'off', jit: 'off' });
});

it('plans made while the tables were tiny walk indexes in order, never a whole table or a bitmap', async () => {
  // A new deployment: every table a page or two, and analysed so (the bench's seeded world was). A
  // plan made now is kept until the next ANALYZE; with sequential scans allowed, the audit feed's
  // was one scan of the events table per branch and per item (measured: 131 reads/s against 1,380).
  const pool = t.database.pool!;
  await pool.query('vacuum analyze');
  // The pool's one connection reports the plan of every statement it runs, nested ones included
  // (the debit batch's), as a notice to this listener.
  const plans: string[] = [];
  const client = await pool.connect();
  client.on('notice', (n) => plans.push(n.message ?? ''));
  await client.query(
    "load 'auto_explain'; set auto_explain.log_min_duration = 0; set auto_explain.log_nested_statements = on; set auto_explain.log_level = 'notice'",
  );
  client.release();
  try {
    const tenant = await createTenant(t);
    const minted = await call(t.app, 'POST', '/v1/keys', {
      token: tenant.serviceKey,
      body: { name: 'tiny tables' },
      headers: { 'idempotency-key': `tiny-${Math.random()}` },
    });
    expect(minted.status).toBe(201);
    expect((await call(t.app, 'GET', `/v1/keys/${minted.body.key.id}`, { token: tenant.serviceKey })).status).toBe(200);
    expect((await call(t.app, 'GET', '/v1/keys?limit=50', { token: tenant.serviceKey })).status).toBe(200);
    expect((await call(t.app, 'GET', '/v1/audit?limit=100', { token: tenant.apiKey })).status).toBe(200);
    const debit = { key: tenant.apiKey, verb: 'call', cost_cents: 1, request_id: `tiny-${Math.random()}` };
    for (let i = 0; i < 2; i++) {
      const res = await call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: debit });
      expect(res.body.valid).toBe(true);
    }
    // Verifies read their keys in batches (db/batched-lookup.ts): a few at once, so both reads are
    // planned for an array of hashes. These carry a named operator token, read the same way.
    const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: new Date() };
    const dataPlane = (await t.services.operatorTokens.create({ name: 'plan-data-plane', scope: 'verify' }, ctx)).plaintext_key;
    recordSecrets(dataPlane);
    const reads = await Promise.all(
      ['read', 'call', 'sms'].map((verb) => call(t.admin, 'POST', '/internal/v1/verify', { token: dataPlane, body: { key: tenant.apiKey, verb } })),
    );
    expect(reads.map((r) => r.body.valid)).toEqual([true, true, true]);
  } finally {
    const again = await pool.connect();
    again.removeAllListeners('notice');
    await again.query('reset auto_explain.log_min_duration');
    again.release();
  }
  // The plans this test is about were all seen: the feed, a key read by id, the debit's ledger probe.
  expect(plans.some((p) => p.includes('keyplane_audit_item'))).toBe(true);
  expect(plans.some((p) => p.includes('Index Scan using api_keys_pkey'))).toBe(true);

  expect(plans.some((p) => p.includes('spend_ledger_request_uq'))).toBe(true);
  // Verify's batched reads: an index probe per hash, never a join that hashes the whole table.
  // The named operator token's read: a probe of its unique index, like the keys'.
  const operator = plans.filter((p) => p.includes('from operator_tokens'));
  expect(operator.length).toBeGreaterThanOrEqual(1);
  for (const p of operator) expect(p).toContain('Index Scan using operator_tokens_token_hash_uq');
  const batched = plans.filter((p) => p.includes('token_hash = ANY') && !operator.includes(p));
  expect(batched.length).toBeGreaterThanOrEqual(2);
  for (const p of batched) {
    expect(p).toContain('Index Scan using api_keys_token_hash_uq');
    expect(p).not.toMatch(/Hash Join|Merge Join/);
  }
  // The debit statement finds each item's key by its hash: a probe per item, never a join that
  // hashes the items and walks the whole api_keys index (its plan before the LATERAL … LIMIT 1).
  const byHash = plans.filter((p) => p.includes('LEFT JOIN LATERAL (SELECT a.id, a.agent_id, a.revoked_at, a.delegation_path FROM api_keys a WHERE a.token_hash'));
  expect(byHash.length).toBeGreaterThanOrEqual(1);
  for (const p of byHash) {
    expect(p).toContain('Index Scan using api_keys_token_hash_uq');
    expect(p).not.toMatch(/Hash (Right |Left )?Join|Merge Join/);
    // An overlapping key's live key (issue 29): a probe of the one-live-key-per-agent index.
    expect(p).toContain('api_keys_agent_live_uq');
  }
  const scans = plans.filter((p) => /Seq Scan|Bitmap Heap Scan/.test(p));
  expect(scans, scans.join('\n\n')).toEqual([]);
});

import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/client.js';
import { queryRows } from '../../src/db/raw.js';
import { createFleetDatabase } from '../support/fleet.js';
import { call, createTenant, createTestApp, type TestApp } from '../support/harness.js';

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

it('the debit batch keeps Postgres\'s default plan choice for its own statements (migration 0008)', async () => {
  // Its ledger probe planned generically while the ledger was empty cost 836 µs per debit against
  // 16 µs planned with its values (pg_stat_statements on the bench's hot key).
  const [fn] = await queryRows<{ config: string[] }>(
    t.database.db,
    sql`select proconfig as config from pg_proc where proname = 'keyplane_debit_batch' and pronargs = 1`,
  );
  expect(fn?.config).toEqual(expect.arrayContaining(['enable_seqscan=off', 'plan_cache_mode=auto']));
  const [session] = await queryRows<{ mode: string }>(t.database.db, sql`select current_setting('plan_cache_mode') as mode`);
  expect(session?.mode).toBe('force_generic_plan');
});

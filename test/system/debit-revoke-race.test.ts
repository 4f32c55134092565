import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { agentLedgerSum } from '../../src/db/queries/spend.queries.js';
import { cycleStartFor } from '../../src/domain/keys/key-object.js';
import { mintChild } from '../support/child-keys.js';
import { createFleetDatabase } from '../support/fleet.js';
import { ADMIN_TOKEN, call, createTenant, createTestApp, type TestApp } from '../support/harness.js';
import { requires } from '../support/requirements.js';

const { it } = await requires(['postgres']);

/*
 * A retried debit whose key is revoked while the debit waits for the key's row lock (migration
 * 0011). Holding a row lock from another session needs a second Postgres session, which the embedded
 * database does not have, so this runs on a database of its own on the machine's Postgres whichever
 * database the run uses.
 */

let fresh: Awaited<ReturnType<typeof createFleetDatabase>>;
let t: TestApp;
const clients: pg.Client[] = [];
beforeAll(async () => {
  fresh = await createFleetDatabase('debit-revoke');
  const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 4 });
  await database.migrate();
  t = await createTestApp({ database });
});
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await t?.close();
  await t?.database.close();
  await fresh?.drop();
});

async function session(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: fresh.url });
  await c.connect();
  clients.push(c);
  return c;
}

const verify = (body: unknown) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });

it('a retry answers invalid_api_key when its key is revoked while the debit waits for the row lock, and debits nothing', async () => {
  const tenant = await createTenant(t);
  const k = await mintChild(t, tenant, { name: 'racer', monthlyCapCents: 1000 });
  const body = { key: k.plaintext, verb: 'call', cost_cents: 5, request_id: 'retried-request' };
  const first = await verify(body);
  expect(first.body).toMatchObject({ valid: true, debit: { replayed: false } });

  // Another session takes the key's row lock, as a revoke in progress does.
  const revoker = await session();
  const watcher = await session();
  await revoker.query('begin');
  await revoker.query('select 1 from api_keys where id = $1 for update', [k.id]);
  // The retry finds the key by its hash, then waits for the lock.
  const retry = verify(body);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { rows } = await watcher.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%keyplane_verify_debit_batch%'`,
    );
    if (rows[0]!.n > 0) break;
    if (Date.now() > deadline) throw new Error('the retried debit never waited for the row lock');
    await new Promise((r) => setTimeout(r, 10));
  }
  await revoker.query('update api_keys set revoked_at = now() where id = $1', [k.id]);
  await revoker.query('commit');

  const res = await retry;
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({ valid: false, code: 'invalid_api_key', status: 401 });
  // The one debit stays the only one.
  const { rows } = await watcher.query<{ agent_id: string; cycle_anchor: Date; monthly_spend_cents: number }>(
    'select agent_id, cycle_anchor, monthly_spend_cents from api_keys where id = $1',
    [k.id],
  );
  expect(Number(rows[0]!.monthly_spend_cents)).toBe(5);
  expect(await agentLedgerSum(t.database.db, tenant.accountId, rows[0]!.agent_id, cycleStartFor(rows[0]!.cycle_anchor, t.clock.now()))).toBe(5);
});

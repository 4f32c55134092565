import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { SQL_FILES, type MigrationLogger } from '../../src/db/migrate.js';
import { createFleetDatabase } from '../support/fleet.js';

/*
 * The upgrade a deployed keyplane goes through when a release changes its SQL functions: migrate()
 * on a database in use, whose functions and triggers already exist, applies the changed files again
 * (CREATE OR REPLACE) in place. Every trigger must still exist exactly once (a duplicate would count
 * a revoke twice), keep guarding its table, and the rows stay as they were. Runs on a database of
 * its own on the machine's Postgres, as a deployment would.
 */

let fresh: Awaited<ReturnType<typeof createFleetDatabase>>;
let database: Database;
const q = async <T>(text: string, params?: unknown[]) => (await database.pool!.query(text, params)).rows as T[];

const account = '00000000-0000-4000-8000-0000000000aa';
const serviceKey = '00000000-0000-4000-8000-0000000000bb';
const event = '00000000-0000-4000-8000-0000000000cc';

beforeAll(async () => {
  fresh = await createFleetDatabase('upgrade');
  database = await openDatabase({ databaseUrl: fresh.url, poolMax: 2 });
  await database.migrate();
  // A database in use: an account, a service key with three children (minted in one statement), and
  // one linked compliance event.
  await q(`insert into accounts (id, name, created_at) values ($1, 'upgrade', now())`, [account]);
  await q(
    `insert into service_keys (id, account_id, environment, name, key_prefix, token_hash, created_at, lineage_id)
     values ($1, $2, 'test', 'svc', 'sk_svc_test_x', md5(gen_random_uuid()::text), now(), $1)`,
    [serviceKey, account],
  );
  await q(
    `insert into api_keys (id, account_id, environment, name, permissions, cycle_anchor, key_prefix, token_hash, created_at, agent_id, created_by_service_key_id)
     select g, $1, 'test', 'k', 'full', now(), 'sk_test_x', md5(g::text), now(), g, $2
       from (select gen_random_uuid() as g from generate_series(1, 3)) s`,
    [account, serviceKey],
  );
  await q(
    `insert into compliance_events (id, account_id, event_type, actor_kind, data, created_at)
     values ($1, $2, 'key.created', 'portal', '{}', now())`,
    [event, account],
  );
  await q(`update compliance_events set seq = 1, prev_hash = repeat('0', 64), hash = repeat('1', 64) where id = $1`, [event]);
});
afterAll(async () => {
  await database?.close();
  await fresh?.drop();
});

const activeChildren = async () =>
  (await q<{ n: number }>(`select coalesce(sum(active), 0)::int as n from child_key_counts where service_key_id = $1`, [serviceKey]))[0]!.n;

it('a release that changed every SQL file re-applies them in place: one trigger each, still guarding, rows kept', async () => {
  expect(await activeChildren()).toBe(3);
  const [linked] = await q<{ item_json: string }>(`select item_json from compliance_events where id = $1`, [event]);
  expect(JSON.parse(linked!.item_json)).toMatchObject({ id: event, data: { seq: 1, hash: '1'.repeat(64) } });

  // What a newer release looks like to this database: every file's text differs from the one applied.
  await q(`update drizzle.keyplane_sql_files set hash = 'previous release'`);
  const applied: string[] = [];
  const log: MigrationLogger = { info: (fields: { migration?: string; sqlFile?: string }) => void applied.push(fields.migration ?? fields.sqlFile!) };
  await database.migrate(log);
  expect(applied).toEqual([...SQL_FILES]);

  const triggers = await q<{ name: string; n: number }>(
    `select tgname as name, count(*)::int as n from pg_trigger where not tgisinternal group by tgname order by tgname`,
  );
  expect(triggers).toHaveLength(7);
  for (const t of triggers) expect(t.n, t.name).toBe(1);

  // The counters count a revoke once, the linked event refuses any change, the ledger stays append-only.
  await q(`update api_keys set revoked_at = now() where id = (select id from api_keys where created_by_service_key_id = $1 limit 1)`, [serviceKey]);
  expect(await activeChildren()).toBe(2);
  await expect(q(`update compliance_events set ip = '10.0.0.1' where id = $1`, [event])).rejects.toThrow(/append-only/);
  await expect(q(`delete from compliance_events where id = $1`, [event])).rejects.toThrow(/append-only/);
  await expect(q(`truncate spend_ledger, compliance_events`)).rejects.toThrow(/append-only/);
  const [kept] = await q<{ item_json: string }>(`select item_json from compliance_events where id = $1`, [event]);
  expect(kept!.item_json).toBe(linked!.item_json);

  // And nothing is left to apply.
  applied.length = 0;
  await database.migrate(log);
  expect(applied).toEqual([]);
});

import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { MIGRATIONS_DIR } from '../../src/db/client.js';
import { createFleetDatabase } from '../support/fleet.js';
import { requires } from '../support/requirements.js';

const { it } = await requires(['postgres']);

/*
 * Migration 0012 on a database that already holds rotated service keys and their children: the
 * upgrade a deployed keyplane goes through. The database is built by the migrations before 0012
 * (a copy of the folder with the journal cut there), filled with SQL, then migrated to the end.
 * Postgres only: the embedded suite's databases start from the current template.
 */

let fresh: Awaited<ReturnType<typeof createFleetDatabase>>;
let c: pg.Client;
let dir: string;
beforeAll(async () => {
  fresh = await createFleetDatabase('lineage');
  c = new pg.Client({ connectionString: fresh.url });
  await c.connect();
  dir = mkdtempSync(path.join(os.tmpdir(), 'keyplane-migrations-'));
});
afterAll(async () => {
  await c?.end();
  await fresh?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the migrations folder whose journal stops before `tag`. */
function migrationsBefore(tag: string): string {
  cpSync(MIGRATIONS_DIR, dir, { recursive: true });
  const journalPath = path.join(dir, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string }[] };
  const at = journal.entries.findIndex((e) => e.tag === tag);
  expect(at).toBeGreaterThan(0);
  journal.entries = journal.entries.slice(0, at);
  mkdirSync(path.dirname(journalPath), { recursive: true });
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

it('0012 gives each service key its chain’s first key as lineage and hands successors’ children to it, counts included', async () => {
  await migrate(drizzle(c), { migrationsFolder: migrationsBefore('0012_service_key_lineage') });
  const account = '00000000-0000-4000-8000-0000000000aa';
  const [a, b, cKey, other] = ['a', 'b', 'c', 'd'].map((x) => `00000000-0000-4000-8000-00000000000${x}`) as [string, string, string, string];
  await c.query(`insert into accounts (id, name, created_at) values ($1, 'upgrade', now())`, [account]);
  const serviceKey = (id: string, from: string | null, revoked: boolean) =>
    c.query(
      `insert into service_keys (id, account_id, environment, name, key_prefix, token_hash, created_at, revoked_at, rotated_from)
       values ($1::uuid, $2, 'test', 'svc', 'sk_svc_test_x', md5($1::text), now(), ${revoked ? 'now()' : 'null'}, $3)`,
      [id, account, from],
    );
  // a → b → cKey, a rotation chain; `other` a key of its own.
  await serviceKey(a, null, true);
  await serviceKey(b, a, true);
  await serviceKey(cKey, b, false);
  await serviceKey(other, null, false);
  const children = (by: string, n: number, revoked = false) =>
    c.query(
      `insert into api_keys (id, account_id, environment, name, permissions, cycle_anchor, key_prefix, token_hash, created_at, agent_id,
                             created_by_service_key_id, revoked_at)
       select g, $1, 'test', 'k', 'full', now(), 'sk_test_x', md5(g::text), now(), g, $2, ${revoked ? 'now()' : 'null'}
         from (select gen_random_uuid() as g from generate_series(1, $3)) s`,
      [account, by, n],
    );
  await children(a, 3);
  await children(b, 2);
  await children(b, 1, true);
  await children(cKey, 4);
  await children(other, 5);

  await migrate(drizzle(c), { migrationsFolder: MIGRATIONS_DIR });

  const lineage = (await c.query<{ id: string; lineage_id: string }>('select id, lineage_id from service_keys order by id')).rows;
  expect(lineage).toEqual([
    { id: a, lineage_id: a },
    { id: b, lineage_id: a },
    { id: cKey, lineage_id: a },
    { id: other, lineage_id: other },
  ]);
  const owners = (
    await c.query<{ owner: string; all: number; active: number }>(
      `select created_by_service_key_id as owner, count(*)::int as all, count(*) filter (where revoked_at is null)::int as active
         from api_keys group by 1 order by 1`,
    )
  ).rows;
  expect(owners).toEqual([
    { owner: a, all: 10, active: 9 },
    { owner: other, all: 5, active: 5 },
  ]);
  // The list's total (child_key_counts) follows the keys.
  const counts = (
    await c.query<{ id: string; n: number }>('select service_key_id as id, sum(active)::int as n from child_key_counts group by 1 having sum(active) <> 0 order by 1')
  ).rows;
  expect(counts).toEqual([
    { id: a, n: 9 },
    { id: other, n: 5 },
  ]);
});

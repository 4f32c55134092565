import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { createFleetDatabase } from '../support/fleet.js';
import { cli } from './support/cli.js';

/*
 * `keyplane migrate status` reports without changing anything, and the read-only commands never
 * migrate (issue 31, item 6): on a database behind this code they exit 4 database_not_migrated and
 * leave it as it was, on Postgres and on an embedded directory.
 */

const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-migrate-status-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ACCOUNT = '00000000-0000-4000-8000-000000000000';
const READ_ONLY = [
  ['keys', 'list', '--account', ACCOUNT],
  ['keys', 'show', ACCOUNT],
  ['service-keys', 'list', '--account', ACCOUNT],
  ['operator-tokens', 'list'],
  ['audit', 'verify'],
  ['audit', 'export'],
  ['verify', 'sk_test_x', '--verb', 'read'],
];

/** Runs a command against one database only: DATABASE_URL, or an embedded directory. */
async function on(target: { url?: string; dir?: string }, args: string[]) {
  delete process.env.DATABASE_URL;
  delete process.env.DATA_DIR;
  process.env.LOG_LEVEL = 'silent';
  if (target.url) process.env.DATABASE_URL = target.url;
  return target.dir ? cli(['--data-dir', target.dir, ...args]) : cli(args);
}

async function expectReadOnlyRefused(target: { url?: string; dir?: string }) {
  for (const args of READ_ONLY) {
    const res = await on(target, [...args, '--json']);
    expect({ args, code: res.code, error: JSON.parse(res.stdout).error.code }).toEqual({ args, code: 4, error: 'database_not_migrated' });
    expect(res.stderr).toMatch(/run keyplane migrate/);
  }
}

describe('keyplane migrate status and read-only commands', () => {
  it('on Postgres: a new database is all pending, read-only commands leave it untouched, migrate brings it up to date', async () => {
    const fresh = await createFleetDatabase('cli_status');
    const schemaCount = async () => {
      const c = new pg.Client({ connectionString: fresh.url });
      await c.connect();
      try {
        return (await c.query("select count(*)::int as n from information_schema.schemata where schema_name = 'drizzle'")).rows[0].n as number;
      } finally {
        await c.end();
      }
    };
    try {
      const before = await on({ url: fresh.url }, ['migrate', 'status', '--json']);
      expect(before.code).toBe(4);
      const status = before.json();
      expect(status).toMatchObject({ database: 'postgres', up_to_date: false, applied: [], unknown: [] });
      expect(status.pending[0]).toBe('0000_baseline');
      await expectReadOnlyRefused({ url: fresh.url });
      expect(await schemaCount()).toBe(0);

      expect((await on({ url: fresh.url }, ['migrate'])).code).toBe(0);
      const after = await on({ url: fresh.url }, ['migrate', 'status', '--json']);
      expect(after.code).toBe(0);
      expect(after.json()).toMatchObject({ up_to_date: true, applied: status.pending, pending: [], changed_sql_files: [] });
      const human = await on({ url: fresh.url }, ['migrate', 'status']);
      expect(human.stdout).toMatch(/^applied {2}0000_baseline$/m);
      expect(human.stdout).toMatch(/^up to date$/m);
      expect((await on({ url: fresh.url }, ['keys', 'list', '--account', ACCOUNT, '--json'])).json().error.code).toBe('not_found');
    } finally {
      await fresh.drop();
    }
  }, 180_000);

  it('embedded: a missing directory is not created, and a directory one migration behind is reported and refused, not migrated', async () => {
    const dir = path.join(tmp, 'data');
    await expectReadOnlyRefused({ dir });
    expect(existsSync(dir)).toBe(false);
    expect((await on({ dir }, ['migrate', 'status', '--json'])).code).toBe(4);
    expect(existsSync(dir)).toBe(false);

    expect((await on({ dir }, ['migrate', '--json'])).code).toBe(0);
    const current = (await on({ dir }, ['migrate', 'status', '--json'])).json();
    expect(current.up_to_date).toBe(true);
    const last = current.applied.at(-1) as string;

    // As if the database predated the newest migration: its record removed (the schema stays).
    const db = await openDatabase({ dataDir: dir });
    const raw = db as unknown as { db: { $client: { query(sql: string): Promise<unknown> } } };
    await raw.db.$client.query('delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)');
    await db.close();

    const behind = await on({ dir }, ['migrate', 'status', '--json']);
    expect(behind.code).toBe(4);
    expect(behind.json()).toMatchObject({ up_to_date: false, pending: [last] });
    await expectReadOnlyRefused({ dir });
    expect((await on({ dir }, ['migrate', 'status', '--json'])).json().pending).toEqual([last]);
  }, 180_000);
});

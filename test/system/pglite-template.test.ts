import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/pglite';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { migratePglite, SQL_FILES } from '../../src/db/migrate.js';
import { buildTemplate, copyTemplateDir, readTemplate, templateDirPath, templatePath } from '../../src/db/pglite/template.js';
import { queryRows } from '../../src/db/statements.js';

const SQL_DIR = path.resolve(import.meta.dirname, '../../src/db/sql');

/*
 * The embedded database's template (src/db/pglite/template.ts): a new data directory starts from a
 * migrated data directory dumped by `npm ci` instead of running initdb. It must be the same database
 * that initdb plus migrate() (the migrations, then the SQL functions of src/db/sql) would have made, and
 * a directory started from it must be an ordinary, durable data directory. (It uses PGlite directly,
 * whichever database the run uses.)
 */

const tmp = mkdtempSync(path.join(os.tmpdir(), 'keyplane-template-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** What a schema is made of, in a form two databases can be compared by. */
const SCHEMA_FACTS = sql`
  select 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') as fact
    from information_schema.columns where table_schema in ('public', 'drizzle')
  union all select 'index ' || indexdef from pg_indexes where schemaname in ('public', 'drizzle')
  union all select 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
    from pg_constraint where connamespace = 'public'::regnamespace
  union all select 'trigger ' || tgrelid::regclass || ' ' || pg_get_triggerdef(oid) from pg_trigger where not tgisinternal
  union all select 'function ' || proname || ' ' || md5(prosrc) from pg_proc where pronamespace = 'public'::regnamespace
  union all select 'migration ' || hash from drizzle.__drizzle_migrations
  union all select 'sql file ' || name || ' ' || hash from drizzle.keyplane_sql_files
  order by fact`;

async function facts(db: Database['db']): Promise<string[]> {
  return (await queryRows<{ fact: string }>(db, SCHEMA_FACTS)).map((r) => r.fact);
}

describe('the embedded database template', () => {
  it('is built for this PGlite and this schema, and a new data directory from it is the database initdb + migrate() make', async () => {
    const built = await buildTemplate();
    expect(built.file).toBe(templatePath());
    expect(path.basename(built.file)).toMatch(/^pglite-\d+\.\d+\.\d+-[0-9a-f]{16}\.tar\.gz$/);
    expect(statSync(built.file).size).toBe(built.bytes);
    expect(readTemplate()).toBeDefined();
    // And unpacked, the form a new data directory on disk is copied from.
    expect(built.dir).toBe(templateDirPath());
    expect(existsSync(path.join(built.dir, 'PG_VERSION'))).toBe(true);
    // Private like a data directory (permissions.ts): 0700 directories, 0600 files.
    expect(statSync(path.dirname(built.dir)).mode & 0o777).toBe(0o700);
    expect(statSync(built.file).mode & 0o777).toBe(0o600);
    const entries = readdirSync(built.dir, { recursive: true, withFileTypes: true });
    expect(entries.length).toBeGreaterThan(500);
    const wide = entries.filter((e) => (statSync(path.join(e.parentPath, e.name)).mode & 0o777) !== (e.isDirectory() ? 0o700 : 0o600));
    expect(wide.map((e) => path.join(e.parentPath, e.name))).toEqual([]);
    expect(readdirSync(path.dirname(built.dir)).filter((f) => f.includes('.partial'))).toEqual([]);

    // Reference: initdb, then migrate().
    const reference = new PGlite();
    await migratePglite(reference);
    const expected = await facts(drizzle(reference) as unknown as Database['db']);
    await reference.close();
    expect(expected.length).toBeGreaterThan(100);
    // Every function the SQL sources declare, and every source, is in the reference.
    const declared = new Set(SQL_FILES.flatMap((f) => [...readFileSync(path.join(SQL_DIR, f), 'utf8').matchAll(/FUNCTION (keyplane_\w+)/g)].map((m) => m[1])));
    expect(declared.size).toBeGreaterThan(5);
    expect(expected.filter((f) => f.startsWith('function keyplane_'))).toHaveLength(declared.size);
    expect(expected.filter((f) => f.startsWith('sql file '))).toHaveLength(SQL_FILES.length);

    const dataDir = path.join(tmp, 'from-template');
    const started = performance.now();
    const fromTemplate = await openDatabase({ dataDir });
    const openMs = performance.now() - started;
    try {
      // Nothing is pending: the template already holds every migration and SQL file.
      await fromTemplate.migrate();
      expect(await facts(fromTemplate.db)).toEqual(expected);
      console.log(`[template] ${(built.bytes / 1e6).toFixed(1)} MB; a new data directory opened from it in ${openMs.toFixed(0)} ms`);
      await fromTemplate.db.execute(sql`insert into accounts (id, name, created_at) values ('00000000-0000-4000-8000-00000000abcd', 'kept', now())`);
    } finally {
      await fromTemplate.close();
    }

    // It was copied from the unpacked template (PGlite changes files as it runs, so compare names).
    const files = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort();
    expect(files(path.join(dataDir, 'pgdata'))).toEqual(expect.arrayContaining(files(built.dir).filter((f) => !f.startsWith('pg_stat'))));
    expect(readdirSync(dataDir).filter((f) => f.includes('.partial'))).toEqual([]);

    // An ordinary data directory: reopened (no template this time), its data is there.
    expect(existsSync(path.join(dataDir, 'pgdata'))).toBe(true);
    const reopened = await openDatabase({ dataDir });
    try {
      await reopened.migrate();
      const rows = await queryRows<{ name: string }>(reopened.db, sql`select name from accounts where id = '00000000-0000-4000-8000-00000000abcd'`);
      expect(rows).toEqual([{ name: 'kept' }]);
    } finally {
      await reopened.close();
    }
  }, 60_000);

  it('copies into a new directory only: never over an existing one, and never leaves a partial copy', async () => {
    if (!existsSync(templateDirPath())) await buildTemplate();
    const target = path.join(tmp, 'copy', 'pgdata');
    expect(copyTemplateDir(target)).toBe(true);
    expect(existsSync(path.join(target, 'PG_VERSION'))).toBe(true);
    // The destination exists now: a second copy fails (rename onto a non-empty directory) and
    // leaves it as it was, with no partial copy beside it.
    expect(copyTemplateDir(target)).toBe(false);
    expect(existsSync(path.join(target, 'PG_VERSION'))).toBe(true);
    expect(readdirSync(path.dirname(target))).toEqual(['pgdata']);
    // The copy is a database.
    const copied = new PGlite(target);
    try {
      const rows = (await copied.query<{ n: number }>(`select count(*)::int as n from drizzle.__drizzle_migrations`)).rows;
      expect(rows[0]!.n).toBeGreaterThan(0);
    } finally {
      await copied.close();
    }
  }, 60_000);
});

import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { MIGRATIONS_DIR, migratePglite, SQL_FILES, UnknownMigrationError, type MigrationLogger } from '../../src/db/migrate.js';
import { createFleetDatabase } from '../support/fleet.js';

/*
 * Database.migrate() on a new database of the run's kind (a database of its own on the run's
 * Postgres server, or a new in-memory PGlite without the template): what it applies, what it logs,
 * that a second run applies nothing, that concurrent runs do not fail, and that it refuses a
 * database migrated by a newer keyplane. test/integration/sql-sources.test.ts checks what it
 * installs against src/db/sql.
 */

const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-migrate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Scratch {
  migrate(log?: MigrationLogger): Promise<void>;
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** A new, empty database; in embedded mode from initdb (never from the template, which is migrated). */
async function emptyDatabase(): Promise<Scratch & { url?: string }> {
  if (inject('dbMode') === 'postgres') {
    const fresh = await createFleetDatabase('migrate');
    const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 2 });
    return {
      url: fresh.url,
      migrate: (log) => database.migrate(log),
      query: async <T>(text: string, params?: unknown[]) => (await database.pool!.query(text, params)).rows as T[],
      close: async () => {
        await database.close();
        await fresh.drop();
      },
    };
  }
  const client = new PGlite();
  return {
    migrate: (log) => migratePglite(client, log),
    query: async <T>(text: string, params?: unknown[]) => (await client.query<T>(text, params)).rows,
    close: () => client.close(),
  };
}

/** What a logger was told, as `migration <tag>` / `sql <file>` lines. */
function recorder(): MigrationLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info(fields: { migration?: string; sqlFile?: string }, message: string) {
      lines.push(fields.migration ? `migration ${fields.migration}` : `sql ${fields.sqlFile} (${message})`);
    },
  };
}

const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string; when: number }[] };
const tags = journal.entries.map((e) => e.tag);

it('no migration holds a function: functions live in src/db/sql', () => {
  const sqlFiles = readdirSync(MIGRATIONS_DIR).filter((f) => f.endsWith('.sql'));
  expect(sqlFiles.length).toBe(tags.length);
  for (const file of sqlFiles) expect(readFileSync(path.join(MIGRATIONS_DIR, file), 'utf8'), file).not.toMatch(/LANGUAGE\s+(plpgsql|sql)/i);
});

describe('migrate() on a new database', () => {
  it('applies and logs each migration, then each SQL file; a second run applies and logs nothing', async () => {
    const db = await emptyDatabase();
    try {
      const first = recorder();
      await db.migrate(first);
      expect(first.lines).toEqual([...tags.map((t) => `migration ${t}`), ...SQL_FILES.map((f) => `sql ${f} (applied SQL file)`)]);
      const migrations = await db.query<{ created_at: string }>('select created_at from drizzle.__drizzle_migrations order by id');
      expect(migrations.map((m) => Number(m.created_at))).toEqual(journal.entries.map((e) => e.when));
      const snapshot = () => db.query<{ name: string; src: string }>(`select proname as name, md5(prosrc) as src from pg_proc where proname like 'keyplane%' order by 1`);
      const before = await snapshot();

      const second = recorder();
      await db.migrate(second);
      expect(second.lines).toEqual([]);
      expect(await snapshot()).toEqual(before);
      expect(await db.query('select created_at from drizzle.__drizzle_migrations order by id')).toEqual(migrations);

      // A file whose text changed (here: whose recorded hash no longer matches) is applied again, alone.
      await db.query(`update drizzle.keyplane_sql_files set hash = 'changed' where name = 'child_key_counts.sql'`);
      const third = recorder();
      await db.migrate(third);
      expect(third.lines).toEqual(['sql child_key_counts.sql (applied SQL file)']);
      expect(await snapshot()).toEqual(before);
    } finally {
      await db.close();
    }
  });

  it('two migrate() calls at once both succeed and apply everything once', async () => {
    const db = await emptyDatabase();
    // Postgres: two instances starting at once (two pools); embedded: two calls in one process.
    const other = db.url ? await openDatabase({ databaseUrl: db.url, poolMax: 1 }) : undefined;
    try {
      const [a, b] = [recorder(), recorder()];
      await Promise.all([db.migrate(a), other ? other.migrate(b) : db.migrate(b)]);
      const applied = [...a.lines, ...b.lines];
      expect(applied.filter((l) => l.startsWith('migration'))).toEqual(tags.map((t) => `migration ${t}`));
      expect(applied.filter((l) => l.startsWith('sql'))).toHaveLength(SQL_FILES.length);
      expect(await db.query('select count(*)::int as n from drizzle.__drizzle_migrations')).toEqual([{ n: tags.length }]);
    } finally {
      await other?.close();
      await db.close();
    }
  });
});

describe('a database migrated by a newer keyplane', () => {
  const later = journal.entries.at(-1)!.when + 86_400_000;

  it('is refused: migrate() throws an error naming the migration it does not know, and changes nothing', async () => {
    const db = await emptyDatabase();
    try {
      await db.migrate();
      await db.query(`insert into drizzle.__drizzle_migrations (hash, created_at) values ($1, $2)`, ['ab'.repeat(32), later]);
      await db.query(`update drizzle.keyplane_sql_files set hash = 'changed'`);
      const log = recorder();
      const refused = await db.migrate(log).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refused).toBeInstanceOf(UnknownMigrationError);
      const message = (refused as Error).message;
      expect(message).toContain(`migration ${later} (generated ${new Date(later).toISOString()}, hash abababababab)`);
      expect(message).toContain('does not know');
      expect(message).not.toContain('\n');
      expect(log.lines).toEqual([]);
      expect(await db.query(`select count(*)::int as n from drizzle.keyplane_sql_files where hash = 'changed'`)).toEqual([{ n: SQL_FILES.length }]);
    } finally {
      await db.close();
    }
  });

  it('the CLI prints the refusal as one line and exits 1', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent' };
    delete env.DATABASE_URL;
    const insertLater = sql`insert into drizzle.__drizzle_migrations (hash, created_at) values (${'cd'.repeat(32)}, ${later})`;
    let close: () => Promise<void>;
    if (inject('dbMode') === 'postgres') {
      const fresh = await createFleetDatabase('refused');
      const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 1 });
      await database.migrate();
      await database.db.execute(insertLater);
      await database.close();
      env.DATABASE_URL = fresh.url;
      close = fresh.drop;
    } else {
      env.DATA_DIR = path.join(tmp, 'refused');
      const database = await openDatabase({ dataDir: env.DATA_DIR });
      await database.migrate();
      await database.db.execute(insertLater);
      await database.close();
      close = async () => {};
    }
    try {
      const res = await promisify(execFile)(process.execPath, [path.resolve('bin/keyplane.js'), 'migrate'], { env, timeout: 120_000 }).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(res.code).toBe(4); // database_unknown_migration: unavailable (src/cli/exit-codes.ts)
      expect(res.stderr).toMatch(new RegExp(`^(keyplane: embedded database in [^\\n]+\\n)?keyplane: the database holds migration ${later} \\(generated [^)]+, hash cdcdcdcdcdcd\\) that this keyplane does not know[^\\n]*\\n$`));
    } finally {
      await close();
    }
  }, 180_000);
});

import { createHash } from 'node:crypto';
import { fillPlaceholders, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type pg from 'pg';
import type { Db, Tx } from './client.js';

/** Runs raw SQL on either driver and returns its rows (both drivers' results carry `.rows`). */
export async function queryRows<T>(db: Db | Tx, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/** The pg pool behind a server-mode Db (registered by openDatabase); embedded mode has none. */
export const poolsByDb = new WeakMap<Db, pg.Pool>();
const dialect = new PgDialect();

/** A prepared statement's name: the hash of its text, which varies with its shape, never its values. */
const statementName = (text: string) => `kp_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;

/**
 * queryRows for the hot statements that drizzle's query builder cannot express (the list and audit
 * reads with their event CTE): in server mode they run as named prepared statements, so Postgres
 * parses and plans each one once per connection instead of on every request (EXPLAIN ANALYZE put
 * planning at 0.6–0.9 ms against 0.6–1.1 ms of execution). Values come back with pg's
 * default parsers (int8 as string, timestamptz as Date): callers accept both forms.
 */
export async function queryRowsPrepared<T>(db: Db, query: SQL): Promise<T[]> {
  const pool = poolsByDb.get(db);
  if (!pool) return queryRows<T>(db, query);
  const { sql: text, params } = dialect.sqlToQuery(query);
  const result = await pool.query({ name: statementName(text), text, values: params as unknown[] });
  return result.rows as T[];
}

type PgliteClient = { query<T>(text: string, params: unknown[]): Promise<{ rows: T[] }> };

/**
 * A raw statement whose SQL text is built once, at module load, with its values as
 * `sql.placeholder(name)`: for the hottest reads, where even building the text per request showed
 * in the profile (drizzle's sqlToQuery, the name's hash). Server mode runs it as a named prepared
 * statement like queryRowsPrepared; embedded mode passes the text and values to PGlite.
 */
export function preparedQuery<T>(query: SQL): (db: Db, values: Record<string, unknown>) => Promise<T[]> {
  const { sql: text, params } = dialect.sqlToQuery(query);
  const name = statementName(text);
  return async (db, values) => {
    const filled = fillPlaceholders(params, values);
    const pool = poolsByDb.get(db);
    if (pool) return (await pool.query({ name, text, values: filled })).rows as T[];
    return (await (db as unknown as { $client: PgliteClient }).$client.query<T>(text, filled)).rows;
  };
}

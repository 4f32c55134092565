import { createHash } from 'node:crypto';
import { fillPlaceholders, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import pg from 'pg';
import type { Db, Tx } from './types.js';

/** Runs raw SQL on either driver and returns its rows (both drivers' results carry `.rows`). */
export async function queryRows<T>(db: Db | Tx, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/** The pg pool behind a server-mode Db (drizzle keeps its client as $client); embedded mode has none. */
export function poolOf(db: Db): pg.Pool | undefined {
  const client = (db as unknown as { $client: unknown }).$client;
  return client instanceof pg.Pool ? client : undefined;
}
const dialect = new PgDialect();

/** A prepared statement's name: the hash of its text, which varies with its shape, never its values. */
const statementName = (text: string) => `kp_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;

type PgliteClient = { query<T>(text: string, params: unknown[]): Promise<{ rows: T[] }> };

/**
 * A raw statement whose SQL text is built once, at module load, with its values as
 * `sql.placeholder(name)`: for the hot statements that drizzle's query builder cannot express (the
 * list and audit statements with their event CTE, the debit) and the hottest reads, so that no
 * request pays for building SQL text. Server mode runs it as a named prepared statement, so
 * Postgres parses it once per connection, and with the pool's plan_cache_mode (db/database.ts)
 * plans it once too; embedded mode passes the text and values to PGlite.
 */
export function preparedQuery<T>(query: SQL): PreparedQuery<T> {
  const { sql: text, params } = dialect.sqlToQuery(query);
  const name = statementName(text);
  const run = async <R>(db: Db, statement: { name?: string; text: string }, values: Record<string, unknown>) => {
    const pool = poolOf(db);
    if (pool) return (await pool.query({ ...statement, values: fillPlaceholders(params, values) })).rows as R[];
    return (await (db as unknown as { $client: PgliteClient }).$client.query<R>(statement.text, fillPlaceholders(params, values))).rows;
  };
  const execute = (db: Db, values: Record<string, unknown>) => run<T>(db, { name, text }, values);
  execute.explain = async (db: Db, values: Record<string, unknown>, analyze = false) => {
    const rows = await run<{ 'QUERY PLAN': string }>(db, { text: `explain ${analyze ? '(analyze, buffers) ' : ''}${text}` }, values);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  };
  return execute;
}

export interface PreparedQuery<T> {
  (db: Db, values: Record<string, unknown>): Promise<T[]>;
  /**
   * The plan of the statement with these values, as EXPLAIN prints it (nothing runs): for tests that
   * pin a plan's shape. With `analyze` the statement RUNS (writes included) and the plan carries its
   * timings and buffers: for benchmarks on a throwaway database.
   */
  explain(db: Db, values: Record<string, unknown>, analyze?: boolean): Promise<string>;
}

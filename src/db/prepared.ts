import { and, eq, sql } from 'drizzle-orm';
import type { Db } from './types.js';
import { apiKeys } from './schema.js';

/*
 * The hot lookups as prepared statements: the SQL text is built once per database handle (not per
 * request, which the profile showed as drizzle's query builder work), and on Postgres each pooled
 * connection parses and plans a named statement once, then only binds and executes it.
 */

function build(db: Db) {
  return {
    /** GET /v1/keys/{id}: primary key, then the ownership check on the row. */
    childKeyById: db
      .select()
      .from(apiKeys)
      .where(
        and(
          eq(apiKeys.id, sql.placeholder('id')),
          eq(apiKeys.accountId, sql.placeholder('accountId')),
          eq(apiKeys.createdByServiceKeyId, sql.placeholder('serviceKeyId')),
        ),
      )
      .prepare('kp_child_key_by_id'),
  };
}

export type PreparedStatements = ReturnType<typeof build>;

const cache = new WeakMap<Db, PreparedStatements>();

/** The prepared statements of a database handle (built on first use). */
export function prepared(db: Db): PreparedStatements {
  let p = cache.get(db);
  if (!p) {
    p = build(db);
    cache.set(db, p);
  }
  return p;
}

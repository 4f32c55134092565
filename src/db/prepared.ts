import { eq, sql } from 'drizzle-orm';
import type { Db } from './types.js';
import { apiKeys, serviceKeys } from './schema.js';

/*
 * The hot lookups as prepared statements: the SQL text is built once per database handle (not per
 * request, which the profile showed as drizzle's query builder work), and on Postgres each pooled
 * connection parses and plans a named statement once, then only binds and executes it.
 */

function build(db: Db) {
  return {
    /** Authentication of a service key: unique index service_keys_token_hash_uq. */
    serviceKeyByHash: db
      .select()
      .from(serviceKeys)
      .where(eq(serviceKeys.tokenHash, sql.placeholder('hash')))
      .prepare('kp_service_key_by_hash'),
    /** Authentication of an API key: unique index api_keys_token_hash_uq. */
    apiKeyByHash: db.select().from(apiKeys).where(eq(apiKeys.tokenHash, sql.placeholder('hash'))).prepare('kp_api_key_by_hash'),
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

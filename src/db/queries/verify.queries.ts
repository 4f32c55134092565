import { sql } from 'drizzle-orm';
import type { ApiKeyRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';

/*
 * The read of a verify without cost: the rows of a batch of token hashes, plain columns (keyplane
 * builds the key objects; Postgres time is the fleet's ceiling, keyplane's CPU scales out).
 *
 * `token_hash = any(…)`, not a join with the unnested array: cached while api_keys held a few rows,
 * the join's generic plan hashed the whole table, and a cached plan outlives the table's growth until
 * the next ANALYZE; this form is an index probe per hash on a table of any size
 * (test/system/plan-cache.test.ts).
 */
const keysByHashes = preparedQuery<ApiKeyColumns>(sql`select k.* from api_keys k where k.token_hash = any(${sql.placeholder('hashes')}::text[])`);

/** The keys of these token hashes (unknown hashes have none), in no particular order. */
export async function apiKeysByHashes(db: Db, tokenHashes: string[]): Promise<ApiKeyRow[]> {
  return (await keysByHashes(db, { hashes: tokenHashes })).map(apiKeyRowOf);
}

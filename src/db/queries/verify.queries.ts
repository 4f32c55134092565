import { sql } from 'drizzle-orm';
import type { ApiKeyRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db } from '../types.js';
import { apiKeyRowOf, dateOrNull, type ApiKeyColumns } from './api-key-rows.js';

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

/** What verify needs of a delegated key's ancestor: the state columns of its agent's live row. */
export interface AncestorRow {
  agentId: string;
  suspendedAt: Date | null;
  expiresAt: Date | null;
}

const liveAgents = preparedQuery<{ agent_id: string; suspended_at: Date | string | null; expires_at: Date | string | null }>(
  sql`select k.agent_id, k.suspended_at, k.expires_at from api_keys k
       where k.agent_id = any(${sql.placeholder('agents')}::uuid[]) and k.revoked_at is null`,
);

/**
 * The live rows of these agents (on api_keys_agent_live_uq): a delegated key's ancestors. An agent
 * with no live row (revoked, no successor) is missing from the answer.
 */
export async function liveAgentRows(db: Db, agentIds: string[]): Promise<AncestorRow[]> {
  return (await liveAgents(db, { agents: agentIds })).map((r) => ({ agentId: r.agent_id, suspendedAt: dateOrNull(r.suspended_at), expiresAt: dateOrNull(r.expires_at) }));
}

/** The keys of these token hashes (unknown hashes have none), in no particular order. */
export async function apiKeysByHashes(db: Db, tokenHashes: string[]): Promise<ApiKeyRow[]> {
  return (await keysByHashes(db, { hashes: tokenHashes })).map(apiKeyRowOf);
}

import { and, asc, desc, eq, isNull, sql } from 'drizzle-orm';
import { accounts, operatorTokens, type OperatorScope, type OperatorTokenRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db, Tx } from '../types.js';

/*
 * Operator tokens (schema.ts: operator_tokens). The lookup runs on every request of the admin
 * listener that carries a named token, verify's hot path included: a prepared statement probing
 * operator_tokens_token_hash_uq, for a batch of hashes at once (as verify reads its keys).
 */

export type NewOperatorTokenRow = typeof operatorTokens.$inferInsert;

/** What a request needs to know about its live operator token. */
export interface LiveOperatorToken {
  id: string;
  name: string;
  scope: OperatorScope;
  tokenHash: string;
}

// Revocation is filtered after the read, not in the WHERE: with `revoked_at is null` there, the
// generic plan made on a small table walked operator_tokens_live_name_uq (whose predicate it is)
// and filtered every live token by hash (test/system/plan-cache.test.ts); this is one probe of
// operator_tokens_token_hash_uq per hash.
const byHashes = preparedQuery<{ id: string; name: string; scope: OperatorScope; token_hash: string; key_prefix: string; revoked: boolean }>(
  sql`select t.id, t.name, t.scope, t.token_hash, t.key_prefix, t.revoked_at is not null as revoked from operator_tokens t
      where t.token_hash = any(${sql.placeholder('hashes')}::text[])`,
);

/** The live (unrevoked) tokens of these hashes; unknown or revoked hashes have none. */
export async function liveOperatorTokensByHashes(db: Db, tokenHashes: string[]): Promise<LiveOperatorToken[]> {
  const rows = await byHashes(db, { hashes: tokenHashes });
  return rows.filter((r) => !r.revoked).map((r) => ({ id: r.id, name: r.name, scope: r.scope, tokenHash: r.token_hash }));
}

/** The tokens of these hashes, live or revoked (the leak intake answers both). */
export async function operatorTokensByHashes(db: Db, tokenHashes: string[]): Promise<(LiveOperatorToken & { keyPrefix: string; revoked: boolean })[]> {
  const rows = await byHashes(db, { hashes: tokenHashes });
  return rows.map((r) => ({ id: r.id, name: r.name, scope: r.scope, tokenHash: r.token_hash, keyPrefix: r.key_prefix, revoked: r.revoked }));
}

export async function insertOperatorToken(tx: Tx, row: NewOperatorTokenRow): Promise<OperatorTokenRow> {
  const [inserted] = await tx.insert(operatorTokens).values(row).returning();
  return inserted!;
}

/** Every operator token, live ones first, then newest first. */
export function listOperatorTokenRows(db: Db): Promise<OperatorTokenRow[]> {
  return db
    .select()
    .from(operatorTokens)
    .orderBy(asc(sql`${operatorTokens.revokedAt} is not null`), desc(operatorTokens.createdAt), desc(operatorTokens.id));
}

/** Revokes the live token with this id, or this name; undefined when there is no such live token. */
export async function revokeOperatorTokenRow(tx: Tx, by: { id: string } | { name: string }, now: Date): Promise<OperatorTokenRow | undefined> {
  const match = 'id' in by ? eq(operatorTokens.id, by.id) : eq(operatorTokens.name, by.name);
  const [row] = await tx
    .update(operatorTokens)
    .set({ revokedAt: now })
    .where(and(match, isNull(operatorTokens.revokedAt)))
    .returning();
  return row;
}

/** Creates the account row that holds the operator's own compliance events, once. */
export async function ensureAccount(tx: Tx, row: { id: string; name: string; createdAt: Date }): Promise<void> {
  await tx.insert(accounts).values(row).onConflictDoNothing({ target: accounts.id });
}

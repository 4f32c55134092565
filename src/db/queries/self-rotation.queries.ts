import { and, eq, isNull, sql } from 'drizzle-orm';
import { accounts, apiKeys, type ApiKeyRow } from '../schema.js';
import { queryRows } from '../statements.js';
import type { Tx } from '../types.js';

/*
 * The statements of a self-rotation presented with a key that is no longer live: the retry of a
 * lost answer, or a copied pair coming back (reuse). Rare by nature (3 attempts per 15 minutes per
 * agent), so plain statements, each on an index: api_keys_agent_live_uq, the primary keys,
 * api_keys_rotated_from_uq.
 */

/** The live key of an agent's rotation chain, locked (FOR UPDATE): retries and reuse queue here. */
export async function lockLiveKeyOfAgent(tx: Tx, accountId: string, agentId: string): Promise<ApiKeyRow | undefined> {
  const [row] = await tx
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.agentId, agentId), eq(apiKeys.accountId, accountId), isNull(apiKeys.revokedAt)))
    .for('update');
  return row;
}

/** The key that replaced `keyId` (its rotation's successor), if any. */
export async function successorOf(tx: Tx, keyId: string): Promise<Pick<ApiKeyRow, 'id' | 'selfRotationBaseId'> | undefined> {
  const [row] = await tx
    .select({ id: apiKeys.id, selfRotationBaseId: apiKeys.selfRotationBaseId })
    .from(apiKeys)
    .where(eq(apiKeys.rotatedFrom, keyId));
  return row;
}

export interface ChainLink {
  id: string;
  rotated_from: string | null;
  self_rotation_base_id: string | null;
}

/** The chain from `headId` back to `stopId` (both included), newest first, along rotated_from. */
export function chainBetween(tx: Tx, headId: string, stopId: string): Promise<ChainLink[]> {
  return queryRows<ChainLink>(
    tx,
    sql`with recursive chain(id, rotated_from, self_rotation_base_id, depth) as (
          select id, rotated_from, self_rotation_base_id, 0 from api_keys where id = ${headId}
          union all
          select k.id, k.rotated_from, k.self_rotation_base_id, c.depth + 1
            from chain c join api_keys k on k.id = c.rotated_from
           where c.id <> ${stopId} and c.depth < 100000
        )
        select id, rotated_from, self_rotation_base_id from chain order by depth`,
  );
}

/** A key revoked at `now` (it is locked by the caller). */
export async function revokeLockedKey(tx: Tx, id: string, now: Date): Promise<void> {
  await tx.update(apiKeys).set({ revokedAt: now }).where(eq(apiKeys.id, id));
}

export async function reuseReactionOf(tx: Tx, accountId: string): Promise<'revoke_chain' | 'report'> {
  const [row] = await tx.select({ reaction: accounts.reuseReaction }).from(accounts).where(eq(accounts.id, accountId));
  return row?.reaction ?? 'revoke_chain';
}

export async function setReuseReaction(tx: Tx, accountId: string, reaction: 'revoke_chain' | 'report') {
  const [row] = await tx.update(accounts).set({ reuseReaction: reaction }).where(eq(accounts.id, accountId)).returning();
  return row;
}

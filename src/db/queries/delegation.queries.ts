import { and, arrayContains, arrayOverlaps, desc, eq, gt, inArray, isNull, or, sql, type SQL } from 'drizzle-orm';
import { apiKeys, type ApiKeyRow } from '../schema.js';
import type { Db, Tx } from '../types.js';

/*
 * The statements of delegation (domain/keys/delegation*.ts): a delegated key names its ancestors by
 * agent id (delegation_path, root first), so an ancestor is its agent's live row (revoked_at null,
 * api_keys_agent_live_uq) whichever key the agent holds now. Subtrees are found on the GIN index
 * api_keys_delegation_path_idx, children on api_keys_parent_agent_idx.
 */

/** Not revoked, or rotated away but still in its overlap at `now`: a row a cascade still has to stop. */
const stillWorking = (now: Date) => or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now));
const delegated = sql`cardinality(${apiKeys.delegationPath}) > 0`;
const subtreeOf = (agentId: string): SQL => and(delegated, arrayContains(apiKeys.delegationPath, [agentId]))!;

/**
 * Locks the live rows of these agents one by one, in the order given (root first: the one order in
 * which every writer of a delegation tree takes its locks), and returns them in that order; an agent
 * without a live row is missing from the answer. A row rotated while this waited for its lock no
 * longer matches (its revoked_at is set): the successor, committed by then, is read once more.
 */
export async function lockLiveAgents(tx: Tx, agentIds: string[]): Promise<ApiKeyRow[]> {
  const rows: ApiKeyRow[] = [];
  for (const agentId of agentIds) {
    const lock = () => tx.select().from(apiKeys).where(and(eq(apiKeys.agentId, agentId), isNull(apiKeys.revokedAt))).for('update');
    const [row] = await lock();
    const found = row ?? (await lock())[0];
    if (found) rows.push(found);
  }
  return rows;
}

/** The live rows of these agents, unlocked (a delegated key's ancestors, for a read that decides nothing). */
export function liveAgentKeys(db: Db, agentIds: string[]): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(and(inArray(apiKeys.agentId, agentIds), isNull(apiKeys.revokedAt)));
}

/** What an agent's live children hold back of its cap: their budgets less their spend. */
export async function reservedBy(db: Db | Tx, agentId: string, now: Date): Promise<number> {
  const [row] = await db
    .select({ reserved: sql<string>`coalesce(sum(greatest(0, coalesce(${apiKeys.monthlyCapCents}, 0) - ${apiKeys.monthlySpendCents})), 0)` })
    .from(apiKeys)
    .where(and(eq(apiKeys.parentAgentId, agentId), isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))));
  return Number(row?.reserved ?? 0);
}

/** Marks an agent's live row as having delegated (the debit then counts its children's reservations). */
export async function markDelegated(tx: Tx, keyId: string): Promise<void> {
  await tx.update(apiKeys).set({ hasDelegated: true }).where(eq(apiKeys.id, keyId));
}

export interface DelegatedPage {
  agentId: string;
  /** Direct children only, or the whole subtree. */
  subtree: boolean;
  limit: number;
  offset: number;
}

/** An agent's unrevoked delegated keys (children or subtree), newest first, and how many there are. */
export async function delegatedKeys(db: Db, page: DelegatedPage): Promise<{ rows: ApiKeyRow[]; total: number }> {
  const where = and(page.subtree ? subtreeOf(page.agentId) : eq(apiKeys.parentAgentId, page.agentId), isNull(apiKeys.revokedAt));
  const rows = await db.select().from(apiKeys).where(where).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).limit(page.limit).offset(page.offset);
  const [count] = await db.select({ n: sql<string>`count(*)` }).from(apiKeys).where(where);
  return { rows, total: Number(count?.n ?? 0) };
}

/** A key of this agent's subtree by id, in any state; undefined when it is not a descendant. */
export async function descendantById(db: Db | Tx, agentId: string, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.select().from(apiKeys).where(and(eq(apiKeys.id, id), subtreeOf(agentId)));
  return row;
}

/**
 * Revokes, now, every still-working key below the agents among `agentIds` that have no live key
 * left (revoked without a successor); a rotated-away key's agent lives on in its successor. Returns
 * the keys it revoked.
 */
export async function revokeSubtrees(tx: Tx, agentIds: string[], now: Date): Promise<ApiKeyRow[]> {
  const gone = [...new Set(agentIds)];
  if (gone.length === 0) return [];
  const live = await tx.select({ agentId: apiKeys.agentId }).from(apiKeys).where(and(inArray(apiKeys.agentId, gone), isNull(apiKeys.revokedAt)));
  const stopped = gone.filter((a) => !live.some((l) => l.agentId === a));
  if (stopped.length === 0) return [];
  return tx
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(delegated, arrayOverlaps(apiKeys.delegationPath, stopped), stillWorking(now)))
    .returning();
}

/** Suspends every unsuspended, still-working key below `agentId`, as taken by its suspension. */
export function suspendSubtree(tx: Tx, agentId: string, now: Date): Promise<ApiKeyRow[]> {
  return tx
    .update(apiKeys)
    .set({ suspendedAt: now, suspendedByAgentId: agentId })
    .where(and(subtreeOf(agentId), stillWorking(now), isNull(apiKeys.suspendedAt)))
    .returning();
}

/** Resumes the keys that `agentId`'s suspension took (and only those). */
export function resumeSubtree(tx: Tx, agentId: string): Promise<ApiKeyRow[]> {
  return tx.update(apiKeys).set({ suspendedAt: null, suspendedByAgentId: null }).where(eq(apiKeys.suspendedByAgentId, agentId)).returning();
}

/** A rotation's successor becomes the parent key its agent's children name. */
export async function repointChildren(tx: Tx, agentId: string, oldKeyId: string, newKeyId: string): Promise<void> {
  await tx
    .update(apiKeys)
    .set({ parentKeyId: newKeyId })
    .where(and(eq(apiKeys.parentAgentId, agentId), eq(apiKeys.parentKeyId, oldKeyId)));
}

/** Keeps every key below `agentId` from outliving its new expiry (a delegated key never outlives its parent). */
export function clampSubtreeExpiry(tx: Tx, agentId: string, expiresAt: Date, now: Date): Promise<ApiKeyRow[]> {
  return tx
    .update(apiKeys)
    .set({ expiresAt })
    .where(and(subtreeOf(agentId), stillWorking(now), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, expiresAt))))
    .returning();
}

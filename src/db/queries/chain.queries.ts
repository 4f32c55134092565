import { and, asc, eq, gt, lte } from 'drizzle-orm';
import { accounts, complianceEvents, eventColumns, type ComplianceEventRow } from '../schema.js';
import type { Db } from '../types.js';

/*
 * The reads of `keyplane audit verify` and `audit export`: account chain heads and linked events,
 * in keyset batches (accounts by id, events by seq), so that memory stays flat on any history.
 */

/** An account's chain head: the seq and hash of its last linked event. */
export interface ChainHeadRow {
  id: string;
  chainSeq: number;
  chainHead: string;
}

const headColumns = { id: accounts.id, chainSeq: accounts.chainSeq, chainHead: accounts.chainHead };

export async function chainHead(db: Db, accountId: string): Promise<ChainHeadRow | undefined> {
  const [row] = await db.select(headColumns).from(accounts).where(eq(accounts.id, accountId));
  return row;
}

/*
 * `afterId` null starts at the first account: the operator account's id is the nil uuid, which no
 * "after" bound below it exists for (its operator-token events are exported and verified too).
 */
const after = (afterId: string | null) => (afterId === null ? undefined : gt(accounts.id, afterId));

/** Up to `limit` chain heads of the accounts after `afterId` (null: from the first), in id order. */
export function chainHeadsAfter(db: Db, afterId: string | null, limit: number): Promise<ChainHeadRow[]> {
  return db.select(headColumns).from(accounts).where(after(afterId)).orderBy(asc(accounts.id)).limit(limit);
}

/** Up to `limit` account ids after `afterId` (null: from the first), in id order. */
export async function accountIdsAfter(db: Db, afterId: string | null, limit: number): Promise<string[]> {
  const rows = await db.select({ id: accounts.id }).from(accounts).where(after(afterId)).orderBy(asc(accounts.id)).limit(limit);
  return rows.map((r) => r.id);
}

/**
 * Up to `limit` linked events of the account with seq after `afterSeq` (and at most `uptoSeq`, when
 * given), in seq order, as stored.
 */
export function eventsBySeq(
  db: Db,
  accountId: string,
  range: { afterSeq: number; uptoSeq?: number },
  limit: number,
): Promise<ComplianceEventRow[]> {
  const bounds = [eq(complianceEvents.accountId, accountId), gt(complianceEvents.seq, range.afterSeq)];
  if (range.uptoSeq !== undefined) bounds.push(lte(complianceEvents.seq, range.uptoSeq));
  return db
    .select(eventColumns)
    .from(complianceEvents)
    .where(and(...bounds))
    .orderBy(asc(complianceEvents.seq))
    .limit(limit);
}

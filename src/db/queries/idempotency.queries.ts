import { and, eq, isNull, sql } from 'drizzle-orm';
import { idempotencyKeys } from '../schema.js';
import { queryRows } from '../statements.js';
import type { Db, Tx } from '../types.js';

/* Every statement of the idempotency records (spec §5): one row per (service key, Idempotency-Key). */

export type IdempotencyRow = typeof idempotencyKeys.$inferSelect;
export type NewIdempotencyRow = typeof idempotencyKeys.$inferInsert;

/** A claim as its holder knows it: the record and the lock instant it wrote. */
export interface ClaimRef {
  id: string;
  lockedAt: Date;
}

/** Inserts a new, locked record; false if the scope's key already has one. */
export async function insertClaim(db: Db, values: NewIdempotencyRow): Promise<boolean> {
  const inserted = await db
    .insert(idempotencyKeys)
    .values(values)
    .onConflictDoNothing({ target: [idempotencyKeys.serviceKeyId, idempotencyKeys.idempotencyKey] })
    .returning({ id: idempotencyKeys.id });
  return inserted.length === 1;
}

export async function recordOf(db: Db, serviceKeyId: string, key: string): Promise<IdempotencyRow | undefined> {
  const [row] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.serviceKeyId, serviceKeyId), eq(idempotencyKeys.idempotencyKey, key)));
  return row;
}

/**
 * Compare-and-set on the values read: rewrites the record with `reset` only if its id, created_at
 * and locked_at are still those of `read`, so of several requests racing for it exactly one wins.
 */
export async function takeOverRecord(db: Db, read: IdempotencyRow, reset: Partial<NewIdempotencyRow>): Promise<boolean> {
  const sameAsRead = and(
    eq(idempotencyKeys.id, read.id),
    eq(idempotencyKeys.createdAt, read.createdAt),
    read.lockedAt ? eq(idempotencyKeys.lockedAt, read.lockedAt) : isNull(idempotencyKeys.lockedAt),
  );
  const won = await db.update(idempotencyKeys).set(reset).where(sameAsRead).returning({ id: idempotencyKeys.id });
  return won.length === 1;
}

/**
 * Inside the effect's transaction: true if the claim is still ours, and then the record stays
 * locked until commit. The set_config makes the transaction commit asynchronously; the caller waits
 * for the linking round's WAL flush before answering (db/durability.ts), so no lock is held across
 * an fsync.
 */
export async function lockOwnClaim(tx: Tx, c: ClaimRef): Promise<boolean> {
  const rows = await queryRows<{ id: string }>(
    tx,
    sql`select id, set_config('synchronous_commit', 'off', true) from idempotency_keys
         where id = ${c.id} and locked_at = ${c.lockedAt.toISOString()}::timestamptz and completed_at is null
         for update`,
  );
  return rows.length === 1;
}

export async function storeResponse(tx: Tx, c: ClaimRef, now: Date, status: number, body: unknown): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ completedAt: now, lockedAt: null, responseStatus: status, responseBody: body })
    .where(eq(idempotencyKeys.id, c.id));
}

/** Deletes our own unfinished claim (after a takeover the row belongs to another request). */
export async function releaseClaim(db: Db, c: ClaimRef): Promise<void> {
  await db
    .delete(idempotencyKeys)
    .where(and(eq(idempotencyKeys.id, c.id), eq(idempotencyKeys.lockedAt, c.lockedAt), isNull(idempotencyKeys.completedAt)));
}

/** Deletes up to `batch` records created before `cutoff`, skipping rows in use; returns how many. */
export async function deleteExpiredRecords(db: Db, cutoff: Date, batch: number): Promise<number> {
  const rows = await queryRows<{ id: string }>(
    db,
    sql`delete from idempotency_keys where id in (
          select id from idempotency_keys where created_at < ${cutoff.toISOString()}::timestamptz
          limit ${batch} for update skip locked)
        returning id`,
  );
  return rows.length;
}

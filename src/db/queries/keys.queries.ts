import { and, eq, gt, isNull, or, sql, type SQL } from 'drizzle-orm';
import { asyncCommitCte } from '../durability.js';
import { apiKeys, type ApiKeyRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db, Tx } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';
import { eventInsertCte } from './events.queries.js';

/*
 * Every statement of the child keys (spec §3–§4) and of self-rotation, over api_keys rows. A
 * service key acts only on the keys its rotation chain minted: `KeyOwner` is that scope.
 */

export type NewApiKeyRow = typeof apiKeys.$inferInsert;

/** The account and the service key (the first of its rotation chain) that minted the keys. */
export interface KeyOwner {
  accountId: string;
  serviceKeyId: string;
}

const ownedBy = (o: KeyOwner, id: string) =>
  and(eq(apiKeys.id, id), eq(apiKeys.accountId, o.accountId), eq(apiKeys.createdByServiceKeyId, o.serviceKeyId));

export async function insertKey(tx: Tx, values: NewApiKeyRow): Promise<ApiKeyRow> {
  const [row] = await tx.insert(apiKeys).values(values).returning();
  return row!;
}

/** The prepared reads a keys service holds for its database (parsed once per connection). */
export function preparedKeyReads(db: Db) {
  return {
    /** A key by primary key, with the ownership check; any state, revoked too. */
    keyById: db
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
export type PreparedKeyReads = ReturnType<typeof preparedKeyReads>;

export async function keyById(reads: PreparedKeyReads, owner: KeyOwner, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await reads.keyById.execute({ id, accountId: owner.accountId, serviceKeyId: owner.serviceKeyId });
  return row;
}

/**
 * Not revoked (nor in a rotation's overlap) and not expired at `now`: live or suspended, the keys a
 * service key may still change (domain/keys/key-state.ts).
 */
const changeable = (now: Date) => and(isNull(apiKeys.revokedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)));

/** A live or suspended key's columns changed; undefined if it is not the owner's or in no such state. */
export async function updateKey(tx: Tx, owner: KeyOwner, id: string, now: Date, patch: Partial<NewApiKeyRow>): Promise<ApiKeyRow | undefined> {
  const [row] = await tx
    .update(apiKeys)
    .set(patch)
    .where(and(ownedBy(owner, id), changeable(now)))
    .returning();
  return row;
}

/**
 * Locks a live or suspended key (FOR UPDATE), for a change that depends on its state: the owner's
 * (a service key's), or any API key of the account (the operator's).
 */
export async function lockChangeableKey(tx: Tx, scope: KeyOwner | { accountId: string }, id: string, now: Date): Promise<ApiKeyRow | undefined> {
  const match = 'serviceKeyId' in scope ? ownedBy(scope, id) : and(eq(apiKeys.id, id), eq(apiKeys.accountId, scope.accountId));
  const [row] = await tx
    .select()
    .from(apiKeys)
    .where(and(match, changeable(now)))
    .for('update');
  return row;
}

/** A locked key's suspended_at set (or cleared, null), as its own: no ancestor's suspension holds it any more. */
export async function setSuspendedAt(tx: Tx, id: string, at: Date | null): Promise<ApiKeyRow> {
  const [row] = await tx.update(apiKeys).set({ suspendedAt: at, suspendedByAgentId: null }).where(eq(apiKeys.id, id)).returning();
  return row!;
}

/** Revokes a live or suspended key now. */
export function revokeKey(tx: Tx, owner: KeyOwner, id: string, now: Date): Promise<ApiKeyRow | undefined> {
  return updateKey(tx, owner, id, now, { revokedAt: now });
}

/**
 * The key `id` if it is in its rotation's overlap at `now` (revoked_at ahead), changed by `patch`:
 * the predecessor of a chain's live key, which follows it (one agent, two keys).
 */
export async function changeOverlapping(
  tx: Tx,
  id: string | null,
  now: Date,
  patch: Partial<NewApiKeyRow>,
  owner?: KeyOwner,
): Promise<ApiKeyRow | undefined> {
  if (!id) return undefined;
  const [row] = await tx
    .update(apiKeys)
    .set(patch)
    .where(and(owner ? ownedBy(owner, id) : eq(apiKeys.id, id), gt(apiKeys.revokedAt, now)))
    .returning();
  return row;
}

/** Which active key to lock: in an account, and (unless self-rotation) minted by this service key. */
export interface ActiveKeyTarget {
  accountId: string;
  keyId: string;
  createdByServiceKeyId?: string;
}

/** Locks an active key for its rotation (FOR UPDATE): concurrent rotations of one key queue here. */
export async function lockActiveKey(tx: Tx, target: ActiveKeyTarget): Promise<ApiKeyRow | undefined> {
  const conditions: SQL[] = [eq(apiKeys.id, target.keyId), eq(apiKeys.accountId, target.accountId), isNull(apiKeys.revokedAt)];
  if (target.createdByServiceKeyId) conditions.push(eq(apiKeys.createdByServiceKeyId, target.createdByServiceKeyId));
  const [row] = await tx
    .select()
    .from(apiKeys)
    .where(and(...conditions))
    .for('update');
  return row;
}

/**
 * Revokes a locked key at `revokedAt` (now, or the end of its overlap) and inserts its successor.
 */
export async function replaceKey(tx: Tx, oldId: string, revokedAt: Date, successor: NewApiKeyRow): Promise<{ old: ApiKeyRow; successor: ApiKeyRow }> {
  const [old] = await tx.update(apiKeys).set({ revokedAt }).where(eq(apiKeys.id, oldId)).returning();
  return { old: old!, successor: await insertKey(tx, successor) };
}

/** A key by its token's hash, in any state (self-rotation tells revoked keys apart). */
export async function keyByTokenHash(db: Db, tokenHash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.select().from(apiKeys).where(eq(apiKeys.tokenHash, tokenHash));
  return row;
}

export interface ListPage {
  accountId: string;
  serviceKeyId: string;
  limit: number;
  offset: number;
  /** Keys expired at `now` are left out, as revoked ones are. */
  now: Date;
}

/**
 * A page of a service key's active (unrevoked, unexpired) keys, newest first, with the total and the
 * service_key_list_read event (its count and total filled in by Postgres) in ONE statement, its
 * own implicit transaction, committed asynchronously (the caller links and flushes). The page uses
 * the partial index api_keys_creator_active_idx; the total sums the service key's child_key_counts
 * shards (≤ 16 rows), so it costs the same at 100,000 keys as at 10, less the keys expired whose
 * expiry the job has not recorded yet (a minute's worth at most, on api_keys_expiry_due_idx). `event` holds the
 * eventInsertCte placeholder values (ev_*). Returns the page's rows and the total.
 */
export async function listPage(db: Db, page: ListPage, event: Record<string, unknown>): Promise<{ rows: ApiKeyRow[]; total: number }> {
  const result = await listStatement(db, {
    account_id: page.accountId,
    service_key_id: page.serviceKeyId,
    limit: page.limit,
    offset: page.offset,
    now: page.now.toISOString(),
    ...event,
  });
  const first = result[0];
  if (!first || first.recorded !== 1) throw new Error(`account ${page.accountId}: list event not recorded`);
  // The page LEFT JOINed to the one counts row: an empty page is one row of nulls.
  const rows = result.filter((r) => r.id !== null).map((r) => apiKeyRowOf(r as unknown as ApiKeyColumns));
  return { rows, total: first.total };
}

const listStatement = (() => {
  const p = (name: string) => sql.placeholder(name);
  return preparedQuery<{ total: number; recorded: number; id: string | null } & Record<string, unknown>>(
    sql`with page as (
          select * from api_keys
           where account_id = ${p('account_id')} and created_by_service_key_id = ${p('service_key_id')} and revoked_at is null
             and (expires_at is null or expires_at > ${p('now')}::timestamptz)
           order by created_at desc, id desc
           limit ${p('limit')} offset ${p('offset')}),
        counts as (
          select (select count(*) from page)::int as page_count,
                 ((select coalesce(sum(active), 0) from child_key_counts where service_key_id = ${p('service_key_id')})
                  - (select count(*) from api_keys
                      where expires_at is not null and expiry_recorded_at is null and revoked_at is null
                        and expires_at <= ${p('now')}::timestamptz and created_by_service_key_id = ${p('service_key_id')}))::int as total),
        ${eventInsertCte('ev', {
          json: sql`'{"count":' || counts.page_count || ',"limit":' || ${p('limit')}::int || ',"offset":' || ${p('offset')}::int || ',"total":' || counts.total || '}'`,
          from: sql`counts`,
        })},
        ${asyncCommitCte}
        select counts.total, (select count(*) from ev)::int as recorded, page.*
          from counts cross join async_commit left join page on true
         order by page.created_at desc, page.id desc`,
  );
})();

import { and, desc, eq, gt, inArray, isNotNull, isNull, like, or, sql, type SQL } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { apiKeys, childKeyCounts, serviceKeys, type ApiKeyRow, type ServiceKeyRow } from '../schema.js';
import type { Db, Tx } from '../types.js';

/*
 * The operator's statements over every key of an account, whatever its kind: service keys
 * (service_keys), and child and portal keys (api_keys: a child has a creator, a portal key none).
 * Reads take a Db; revocations take the transaction that records their compliance events.
 */

export type KeyKind = 'service' | 'child' | 'portal';

/** One key, tagged with its table's row type. */
export type AnyKeyRow = { kind: 'service'; row: ServiceKeyRow } | { kind: 'child' | 'portal'; row: ApiKeyRow };

export interface AccountKeysFilter {
  accountId: string;
  /** null: active and revoked keys alike. */
  status: 'active' | 'revoked' | null;
  /** Keys whose key_prefix starts with this (already restricted to [A-Za-z0-9_] by the caller). */
  prefix: string | null;
  /** null: every kind. */
  kind: KeyKind | null;
  /** Keyset cursor: only keys strictly older than this (created_at, id), newest first. */
  before: { createdAt: Date; id: string } | null;
  limit: number;
}

type KeyColumns = Record<'accountId' | 'revokedAt' | 'keyPrefix' | 'createdAt' | 'id', AnyPgColumn>;

/** `_` is LIKE's one-character wildcard, and key prefixes are full of it. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The conditions both tables share: account, status, prefix, cursor. */
function common(t: KeyColumns, f: AccountKeysFilter): SQL[] {
  const where: SQL[] = [eq(t.accountId, f.accountId)];
  if (f.status === 'active') where.push(isNull(t.revokedAt));
  if (f.status === 'revoked') where.push(isNotNull(t.revokedAt));
  if (f.prefix) where.push(like(t.keyPrefix, `${likeLiteral(f.prefix)}%`));
  if (f.before) where.push(sql`(${t.createdAt}, ${t.id}) < (${f.before.createdAt.toISOString()}::timestamptz, ${f.before.id}::uuid)`);
  return where;
}

const newestFirst = (a: { row: { createdAt: Date; id: string } }, b: { row: { createdAt: Date; id: string } }) =>
  b.row.createdAt.getTime() - a.row.createdAt.getTime() || (a.row.id < b.row.id ? 1 : a.row.id > b.row.id ? -1 : 0);

/**
 * Up to `limit` keys of the account matching the filter, newest first, ties by id: each table is
 * read in index order (api_keys_account_idx, service_keys_account_idx) up to `limit` rows, and the
 * two are merged. The caller asks for one more than a page to learn whether another follows.
 */
export async function accountKeys(db: Db, f: AccountKeysFilter): Promise<AnyKeyRow[]> {
  const wantApi = f.kind !== 'service';
  const wantService = f.kind === null || f.kind === 'service';
  const apiWhere = common(apiKeys, f);
  if (f.kind === 'child') apiWhere.push(isNotNull(apiKeys.createdByServiceKeyId));
  if (f.kind === 'portal') apiWhere.push(isNull(apiKeys.createdByServiceKeyId));
  const [api, service] = await Promise.all([
    wantApi
      ? db.select().from(apiKeys).where(and(...apiWhere)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).limit(f.limit)
      : Promise.resolve([]),
    wantService
      ? db.select().from(serviceKeys).where(and(...common(serviceKeys, f))).orderBy(desc(serviceKeys.createdAt), desc(serviceKeys.id)).limit(f.limit)
      : Promise.resolve([]),
  ]);
  const rows: AnyKeyRow[] = [
    ...api.map((row) => ({ kind: row.createdByServiceKeyId ? ('child' as const) : ('portal' as const), row })),
    ...service.map((row) => ({ kind: 'service' as const, row })),
  ];
  return rows.sort(newestFirst).slice(0, f.limit);
}

const tagApi = (row: ApiKeyRow): AnyKeyRow => ({ kind: row.createdByServiceKeyId ? 'child' : 'portal', row });

/** A key of any kind by its id (uuids do not repeat across the two tables). */
export async function keyOfAnyKind(db: Db, id: string): Promise<AnyKeyRow | undefined> {
  const [service] = await db.select().from(serviceKeys).where(eq(serviceKeys.id, id));
  if (service) return { kind: 'service', row: service };
  const [api] = await db.select().from(apiKeys).where(eq(apiKeys.id, id));
  return api && tagApi(api);
}

/** Keys of any kind and account by their tokens' hashes (the unique token_hash indexes), any state. */
export async function keysByTokenHashes(db: Db, hashes: string[]): Promise<AnyKeyRow[]> {
  if (hashes.length === 0) return [];
  const [api, service] = await Promise.all([
    db.select().from(apiKeys).where(inArray(apiKeys.tokenHash, hashes)),
    db.select().from(serviceKeys).where(inArray(serviceKeys.tokenHash, hashes)),
  ]);
  return [...api.map(tagApi), ...service.map((row) => ({ kind: 'service' as const, row }))];
}

/** The live (unrevoked) service keys of the given rotation chains of an account: who manages their children. */
export function liveKeysOfChains(db: Db, accountId: string, lineageIds: string[]): Promise<Pick<ServiceKeyRow, 'id' | 'lineageId'>[]> {
  if (lineageIds.length === 0) return Promise.resolve([]);
  return db
    .select({ id: serviceKeys.id, lineageId: serviceKeys.lineageId })
    .from(serviceKeys)
    .where(and(eq(serviceKeys.accountId, accountId), inArray(serviceKeys.lineageId, lineageIds), isNull(serviceKeys.revokedAt)));
}

/** How many live child keys a rotation chain has (the child_key_counts shards, at most 16 rows). */
export async function liveChildCount(db: Db | Tx, lineageId: string): Promise<number> {
  const [row] = await db
    .select({ n: sql<string>`coalesce(sum(${childKeyCounts.active}), 0)` })
    .from(childKeyCounts)
    .where(eq(childKeyCounts.serviceKeyId, lineageId));
  return Number(row?.n ?? 0);
}

/** Not revoked yet at `now`: unrevoked, or a rotated key still in its overlap (revoked_at ahead). */
const stillWorking = (now: Date) => or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now));

/** Revokes api_keys rows (child or portal) of one account that are not revoked yet; returns those it revoked. */
export function revokeApiKeyRows(tx: Tx, accountId: string, ids: string[], now: Date): Promise<ApiKeyRow[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return tx
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.accountId, accountId), inArray(apiKeys.id, ids), stillWorking(now)))
    .returning();
}

/** Ends now the overlaps of the predecessors of these keys (the keys just revoked); returns them. */
export function endOverlapsOf(tx: Tx, accountId: string, predecessorIds: string[], now: Date): Promise<ApiKeyRow[]> {
  if (predecessorIds.length === 0) return Promise.resolve([]);
  return tx
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.accountId, accountId), inArray(apiKeys.id, predecessorIds), gt(apiKeys.revokedAt, now)))
    .returning();
}

/** Revokes service keys of one account that are not revoked yet; returns those it revoked. */
export function revokeServiceKeyRows(tx: Tx, accountId: string, ids: string[], now: Date): Promise<ServiceKeyRow[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return tx
    .update(serviceKeys)
    .set({ revokedAt: now })
    .where(and(eq(serviceKeys.accountId, accountId), inArray(serviceKeys.id, ids), isNull(serviceKeys.revokedAt)))
    .returning();
}

/** Revokes every live child key of a rotation chain (api_keys_creator_active_idx); returns them. */
export function revokeChainChildren(tx: Tx, accountId: string, lineageId: string, now: Date): Promise<ApiKeyRow[]> {
  return tx
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.accountId, accountId), eq(apiKeys.createdByServiceKeyId, lineageId), stillWorking(now)))
    .returning();
}

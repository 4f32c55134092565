import { and, desc, eq, isNull } from 'drizzle-orm';
import { accounts, apiKeys, serviceKeys, type AccountRow, type ApiKeyRow, type ServiceKeyRow } from '../schema.js';
import type { Db, Tx } from '../types.js';

/*
 * The portal backend's statements (spec §9): accounts, service keys and portal API keys. Writes
 * take the caller's transaction (the one that records their compliance event); reads take a Db.
 */

export type NewAccountRow = Pick<typeof accounts.$inferInsert, 'id' | 'name' | 'createdAt'>;
export type NewServiceKeyRow = typeof serviceKeys.$inferInsert;
export type NewApiKeyRow = typeof apiKeys.$inferInsert;

export async function insertAccount(tx: Tx, row: NewAccountRow): Promise<AccountRow> {
  const [inserted] = await tx.insert(accounts).values(row).returning();
  return inserted!;
}

export async function findAccount(db: Db, accountId: string): Promise<AccountRow | undefined> {
  const [row] = await db.select().from(accounts).where(eq(accounts.id, accountId));
  return row;
}

export async function insertServiceKey(tx: Tx, row: NewServiceKeyRow): Promise<ServiceKeyRow> {
  const [inserted] = await tx.insert(serviceKeys).values(row).returning();
  return inserted!;
}

export async function findServiceKey(db: Db, id: string): Promise<ServiceKeyRow | undefined> {
  const [row] = await db.select().from(serviceKeys).where(eq(serviceKeys.id, id));
  return row;
}

/** An account's service keys, newest first. */
export function serviceKeysOfAccount(db: Db, accountId: string): Promise<ServiceKeyRow[]> {
  return db
    .select()
    .from(serviceKeys)
    .where(eq(serviceKeys.accountId, accountId))
    .orderBy(desc(serviceKeys.createdAt), desc(serviceKeys.id));
}

/** Revokes a service key that is not revoked yet; undefined when there is no such key. */
export async function revokeServiceKeyRow(tx: Tx, id: string, now: Date): Promise<ServiceKeyRow | undefined> {
  const [row] = await tx
    .update(serviceKeys)
    .set({ revokedAt: now })
    .where(and(eq(serviceKeys.id, id), isNull(serviceKeys.revokedAt)))
    .returning();
  return row;
}

export async function insertApiKey(tx: Tx, row: NewApiKeyRow): Promise<ApiKeyRow> {
  const [inserted] = await tx.insert(apiKeys).values(row).returning();
  return inserted!;
}

/**
 * Revokes a portal API key (one no service key created) that is not revoked yet; undefined when
 * there is no such key, so a child key cannot be revoked through the portal.
 */
export async function revokePortalKeyRow(tx: Tx, id: string, now: Date): Promise<ApiKeyRow | undefined> {
  const [row] = await tx
    .update(apiKeys)
    .set({ revokedAt: now })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt), isNull(apiKeys.createdByServiceKeyId)))
    .returning();
  return row;
}

import { and, desc, eq, gt, ilike, isNotNull, isNull, lt, lte, or, sql, type SQL } from 'drizzle-orm';
import type { ConsoleSessionRow } from '../tables/console.js';
import { accounts, apiKeys, complianceEvents, consoleSessions, eventColumns, operatorTokens, type AccountRow, type ApiKeyRow, type ComplianceEventRow, type Permission } from '../schema.js';
import type { Db } from '../types.js';

/*
 * The operator console's own statements: its sessions, and the reads the internal API has no
 * route for yet (the account list, an account's events, a service key's child keys). Reads only,
 * apart from the sessions: every write the console makes goes through the domain's services.
 */

export async function insertConsoleSession(db: Db, row: ConsoleSessionRow): Promise<void> {
  await db.insert(consoleSessions).values(row);
}

/**
 * The live session with this id hash, touched (last_seen_at = now) in the same statement. Dead when
 * idle since `idleSince`, or when its named operator token was revoked: the console never outlives
 * the power of the token that opened it.
 */
export async function touchConsoleSession(db: Db, idHash: string, now: Date, idleSince: Date): Promise<ConsoleSessionRow | undefined> {
  const tokenLive = or(
    isNull(consoleSessions.operatorTokenId),
    sql`exists (select 1 from ${operatorTokens} where ${operatorTokens.id} = ${consoleSessions.operatorTokenId} and ${operatorTokens.revokedAt} is null)`,
  );
  const [row] = await db
    .update(consoleSessions)
    .set({ lastSeenAt: now })
    .where(and(eq(consoleSessions.idHash, idHash), gt(consoleSessions.lastSeenAt, idleSince), tokenLive))
    .returning();
  return row;
}

export async function deleteConsoleSession(db: Db, idHash: string): Promise<void> {
  await db.delete(consoleSessions).where(eq(consoleSessions.idHash, idHash));
}

/** Deletes sessions idle since before `idleSince`; returns how many. */
export async function sweepConsoleSessions(db: Db, idleSince: Date): Promise<number> {
  const rows = await db.delete(consoleSessions).where(lt(consoleSessions.lastSeenAt, idleSince)).returning({ id: consoleSessions.idHash });
  return rows.length;
}

const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** Up to `limit` accounts, newest first, whose name contains `search` or whose id equals it. */
export function searchAccounts(db: Db, search: string | null, idMatch: string | null, limit: number): Promise<AccountRow[]> {
  const where: SQL[] = [];
  if (search) {
    const byName = ilike(accounts.name, `%${likeLiteral(search)}%`);
    where.push(idMatch ? or(byName, eq(accounts.id, idMatch))! : byName);
  }
  return db
    .select()
    .from(accounts)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(accounts.createdAt), desc(accounts.id))
    .limit(limit);
}

export interface AccountEventsFilter {
  accountId: string;
  eventType: string | null;
  /** Events in which this key is the actor, the subject or the related key. */
  keyId: string | null;
  /** Keyset cursor: only events strictly older than this (created_at, id). */
  before: { createdAt: Date; id: string } | null;
  limit: number;
}

/** An account's compliance events, newest first (ties by id), filtered. */
export function accountEvents(db: Db, f: AccountEventsFilter): Promise<ComplianceEventRow[]> {
  const t = complianceEvents;
  const where: SQL[] = [eq(t.accountId, f.accountId)];
  if (f.eventType) where.push(eq(t.eventType, f.eventType));
  if (f.keyId) where.push(or(eq(t.actorKeyId, f.keyId), eq(t.subjectKeyId, f.keyId), eq(t.relatedKeyId, f.keyId))!);
  if (f.before) where.push(sql`(${t.createdAt}, ${t.id}) < (${f.before.createdAt.toISOString()}::timestamptz, ${f.before.id}::uuid)`);
  return db.select(eventColumns).from(t).where(and(...where)).orderBy(desc(t.createdAt), desc(t.id)).limit(f.limit);
}

export async function accountEvent(db: Db, accountId: string, id: string): Promise<ComplianceEventRow | undefined> {
  const [row] = await db.select(eventColumns).from(complianceEvents).where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.id, id)));
  return row;
}

export interface ChildKeysFilter {
  accountId: string;
  /** The first key of the service key's rotation chain (its lineage id). */
  lineageId: string;
  label: string | null;
  lineId: string | null;
  permissions: Permission | null;
  status: KeyStatusName | null;
  /** The instant the status is read at, and the end of the window that makes a live key expiring. */
  now: Date;
  expiringBy: Date;
  limit: number;
}

/** domain/keys/key-state.ts's KeyStatus. */
export type KeyStatusName = 'live' | 'expiring' | 'overlapping' | 'suspended' | 'expired' | 'revoked';

/**
 * The SQL of key-state.ts's keyStatus (keep them together): revoked wins, then suspended, then
 * expired; a live key expiring by `expiringBy` is expiring; a working key revoked later overlaps.
 */
function statusCondition(status: KeyStatusName, now: Date, expiringBy: Date): SQL {
  const working = or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now))!;
  const notExpired = or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now))!;
  switch (status) {
    case 'revoked':
      return lte(apiKeys.revokedAt, now);
    case 'suspended':
      return and(working, isNotNull(apiKeys.suspendedAt))!;
    case 'expired':
      return and(working, isNull(apiKeys.suspendedAt), lte(apiKeys.expiresAt, now))!;
    case 'overlapping':
      return and(gt(apiKeys.revokedAt, now), isNull(apiKeys.suspendedAt), notExpired)!;
    case 'expiring':
      return and(isNull(apiKeys.revokedAt), isNull(apiKeys.suspendedAt), gt(apiKeys.expiresAt, now), lte(apiKeys.expiresAt, expiringBy))!;
    case 'live':
      return and(isNull(apiKeys.revokedAt), isNull(apiKeys.suspendedAt), or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, expiringBy)))!;
  }
}

/** The keys a service key's rotation chain minted, newest first. */
export function childKeysOfChain(db: Db, f: ChildKeysFilter): Promise<ApiKeyRow[]> {
  const where: SQL[] = [eq(apiKeys.accountId, f.accountId), eq(apiKeys.createdByServiceKeyId, f.lineageId)];
  if (f.label) where.push(ilike(apiKeys.agentLabel, `%${likeLiteral(f.label)}%`));
  if (f.lineId) where.push(eq(apiKeys.lineId, f.lineId));
  if (f.permissions) where.push(eq(apiKeys.permissions, f.permissions));
  if (f.status) where.push(statusCondition(f.status, f.now, f.expiringBy));
  return db.select().from(apiKeys).where(and(...where)).orderBy(desc(apiKeys.createdAt), desc(apiKeys.id)).limit(f.limit);
}

/** Every key of the rotation chain (agent) of the API key `keyId`, oldest first; none if it is no API key. */
export function agentKeysOf(db: Db, accountId: string, keyId: string): Promise<ApiKeyRow[]> {
  const agent = sql`(select ${apiKeys.agentId} from ${apiKeys} where ${apiKeys.id} = ${keyId}::uuid and ${apiKeys.accountId} = ${accountId}::uuid)`;
  return db.select().from(apiKeys).where(and(eq(apiKeys.accountId, accountId), eq(apiKeys.agentId, agent))).orderBy(apiKeys.createdAt, apiKeys.id);
}

import { sql } from 'drizzle-orm';
import type { ApiKeyRow } from '../schema.js';
import { queryRows } from '../statements.js';
import type { Db, Tx } from '../types.js';
import { apiKeyRowOf, type ApiKeyColumns } from './api-key-rows.js';

/*
 * The expiry job's statements (domain/keys/expiry.ts), on the partial index api_keys_expiry_due_idx:
 * unrevoked keys past expires_at whose agent_key_expired is not written yet.
 */

/** Accounts with keys due, oldest expiry first; the job writes each account's events in its own transaction. */
export async function accountsWithExpiredKeys(db: Db, now: Date, limit: number): Promise<string[]> {
  const rows = await queryRows<{ account_id: string }>(
    db,
    sql`select distinct account_id from (
          select account_id from api_keys
           where expires_at is not null and expiry_recorded_at is null and revoked_at is null and expires_at <= ${now.toISOString()}::timestamptz
           order by expires_at limit ${limit}) due`,
  );
  return rows.map((r) => r.account_id);
}

/**
 * Marks an account's due keys recorded at `now` and returns them. FOR UPDATE SKIP LOCKED: of
 * instances sweeping at once, each key is taken by one; a key another transaction holds (being
 * revoked, rotated) is left for the next sweep, which sees it again unless it was revoked.
 */
export async function markExpiredKeys(tx: Tx, accountId: string, now: Date, limit: number): Promise<ApiKeyRow[]> {
  const at = now.toISOString();
  const rows = await queryRows<ApiKeyColumns>(
    tx,
    sql`with due as (
          select id from api_keys
           where expires_at is not null and expiry_recorded_at is null and revoked_at is null and expires_at <= ${at}::timestamptz
             and account_id = ${accountId}::uuid
           order by expires_at limit ${limit}
           for update skip locked)
        update api_keys k set expiry_recorded_at = ${at}::timestamptz
          from due where k.id = due.id
        returning k.*`,
  );
  return rows.map(apiKeyRowOf);
}

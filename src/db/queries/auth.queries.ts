import { sql } from 'drizzle-orm';
import { asyncCommitCte } from '../durability.js';
import type { ApiKeyRow, ServiceKeyRow } from '../schema.js';
import { apiKeyRowOf, dateOf, dateOrNull, type ApiKeyColumns } from './api-key-rows.js';
import { preparedQuery } from '../statements.js';
import type { Db } from '../types.js';

/*
 * Authentication's statements: token lookups by hash (unique indexes api_keys_token_hash_uq,
 * service_keys_token_hash_uq) and the last_used_at writes. Prepared once (db/statements.ts): the
 * hot path binds and executes, it never builds SQL text per request.
 */

interface ServiceKeyColumns {
  id: string;
  account_id: string;
  environment: ServiceKeyRow['environment'];
  name: string;
  key_prefix: string;
  token_hash: string;
  created_at: Date | string;
  revoked_at: Date | string | null;
  last_used_at: Date | string | null;
  rotated_from: string | null;
  lineage_id: string;
}

function serviceKeyRowOf(c: ServiceKeyColumns): ServiceKeyRow {
  return {
    id: c.id,
    accountId: c.account_id,
    environment: c.environment,
    name: c.name,
    keyPrefix: c.key_prefix,
    tokenHash: c.token_hash,
    createdAt: dateOf(c.created_at),
    revokedAt: dateOrNull(c.revoked_at),
    lastUsedAt: dateOrNull(c.last_used_at),
    rotatedFrom: c.rotated_from,
    lineageId: c.lineage_id,
  };
}

const serviceKeyStatement = preparedQuery<ServiceKeyColumns>(sql`select s.* from service_keys s where s.token_hash = ${sql.placeholder('hash')}`);
const apiKeyStatement = preparedQuery<ApiKeyColumns>(sql`select k.* from api_keys k where k.token_hash = ${sql.placeholder('hash')}`);

export async function serviceKeyByHash(db: Db, tokenHash: string): Promise<ServiceKeyRow | undefined> {
  const [row] = await serviceKeyStatement(db, { hash: tokenHash });
  return row && serviceKeyRowOf(row);
}

export async function apiKeyByHash(db: Db, tokenHash: string): Promise<ApiKeyRow | undefined> {
  const [row] = await apiKeyStatement(db, { hash: tokenHash });
  return row && apiKeyRowOf(row);
}

/** A last_used_at write: set it to `now` unless the row was used since `staleBefore` (or revoked). */
interface Touch {
  id: string;
  now: Date;
  staleBefore: Date;
}

// Committed asynchronously (no wait for the WAL fsync): last_used_at is a once-a-second hint, and a
// crash that loses its last few hundred milliseconds loses nothing a caller relies on. Waiting for
// the fsync made the verify that did the write, one per key per second, the slowest 1 % of verifies.
const touchApiKeyStatement = preparedQuery<{ id: string }>(
  sql`WITH ${asyncCommitCte}
      UPDATE api_keys k SET last_used_at = ${sql.placeholder('now')}::timestamptz
      FROM async_commit
      WHERE k.id = ${sql.placeholder('id')}::uuid AND k.account_id = ${sql.placeholder('accountId')}::uuid
        AND (k.revoked_at IS NULL OR k.revoked_at > ${sql.placeholder('now')}::timestamptz)
        AND (k.last_used_at IS NULL OR k.last_used_at < ${sql.placeholder('staleBefore')}::timestamptz)
      RETURNING k.id`,
);

/**
 * Whether the write happened (false: the key was used since staleBefore, or revoked meanwhile). A key
 * in its rotation's overlap (revoked_at ahead) keeps its last_used_at moving.
 */
export async function touchApiKey(db: Db, accountId: string, t: Touch): Promise<boolean> {
  const rows = await touchApiKeyStatement(db, { id: t.id, accountId, now: t.now.toISOString(), staleBefore: t.staleBefore.toISOString() });
  return rows.length > 0;
}

const touchServiceKeyStatement = preparedQuery(
  sql`WITH ${asyncCommitCte}
      UPDATE service_keys SET last_used_at = ${sql.placeholder('now')}::timestamptz
      FROM async_commit
      WHERE id = ${sql.placeholder('id')}::uuid AND revoked_at IS NULL
        AND (last_used_at IS NULL OR last_used_at < ${sql.placeholder('staleBefore')}::timestamptz)`,
);

/** As touchApiKey, committed asynchronously for the same reason. */
export async function touchServiceKey(db: Db, t: Touch): Promise<void> {
  await touchServiceKeyStatement(db, { id: t.id, now: t.now.toISOString(), staleBefore: t.staleBefore.toISOString() });
}

import { sql } from 'drizzle-orm';
import type { Db } from '../../db/types.js';
import { perDatabase } from '../../db/batched-lookup.js';
import { asyncCommitCte } from '../../db/durability.js';
import { prepared } from '../../db/prepared.js';
import { preparedQuery } from '../../db/statements.js';
import type { ApiKeyRow, ServiceKeyRow } from '../../db/schema.js';
import { parseToken, type Environment } from './credentials.js';
import { invalidApiKey } from '../errors.js';
import type { Actor } from '../audit/events.js';
import { ServiceKeyReadCache } from './service-key-cache.js';
import { LAST_USED_RESOLUTION_MS, touchLastUsed } from '../verify/spend.service.js';

export type Tier = 'service' | 'api';

export interface ServicePrincipal {
  tier: 'service';
  id: string;
  /**
   * Whose child keys this key manages: its rotation chain's first key (service_keys.lineage_id), so
   * that rotating a service key hands its fleet to the successor. Children store it as
   * created_by_service_key_id.
   */
  ownerId: string;
  accountId: string;
  environment: Environment;
  keyPrefix: string;
}

export interface ApiPrincipal {
  tier: 'api';
  id: string;
  accountId: string;
  environment: Environment;
  keyPrefix: string;
  key: ApiKeyRow;
}

export type Principal = ServicePrincipal | ApiPrincipal;

/**
 * A revoked (or rotated-away) service key may still read for 60 s, so that a fleet switching to its
 * successor does not fail reads mid-deploy; writes are refused at once (spec §2).
 */
export const SERVICE_KEY_READ_GRACE_MS = 60_000;

/**
 * Resolves a bearer token for a route of the given tier. Every failure (malformed, bad checksum,
 * unknown, revoked, wrong tier) is the same invalid_api_key, so the answer never reveals which.
 * The shape, checksum and tier are checked before any database work. API keys are always read
 * from the database, so a revocation is seen by the very next request on every instance; service
 * keys on reads may come from `cache` (see service-key-cache.ts for why that is within spec §2).
 */
export async function authenticate(
  db: Db,
  token: string,
  tier: Tier,
  opts: { readOnly: boolean; now: Date; cache?: ServiceKeyReadCache },
): Promise<Principal> {
  const parsed = parseToken(token);
  if (!parsed || parsed.kind !== tier) throw invalidApiKey();
  if (tier === 'service') {
    let row = opts.readOnly ? opts.cache?.get(parsed.tokenHash, opts.now) : undefined;
    if (!row) {
      [row] = await prepared(db).serviceKeyByHash.execute({ hash: parsed.tokenHash });
      if (row) opts.cache?.set(parsed.tokenHash, row, opts.now);
    }
    if (!row) throw invalidApiKey();
    if (row.revokedAt) {
      const inGrace = opts.now.getTime() - row.revokedAt.getTime() < SERVICE_KEY_READ_GRACE_MS;
      if (!opts.readOnly || !inGrace) throw invalidApiKey();
    } else {
      await noteServiceKeyUse(db, row, opts.now);
    }
    return { tier, id: row.id, ownerId: row.lineageId, accountId: row.accountId, environment: row.environment, keyPrefix: row.keyPrefix };
  }
  const [row] = await prepared(db).apiKeyByHash.execute({ hash: parsed.tokenHash });
  if (!row || row.revokedAt) throw invalidApiKey();
  // last_used_at, as verify keeps it: at most one write per second per key (spend.service.ts).
  if (!row.lastUsedAt || opts.now.getTime() - row.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) await touchLastUsed(db, row.id, row.accountId, opts.now);
  return { tier, id: row.id, accountId: row.accountId, environment: row.environment, keyPrefix: row.keyPrefix, key: row };
}

/**
 * A service key's last_used_at: at most one write per second per key and instance. Reads may be
 * served from the 5-second row cache, whose last_used_at is stale, so the instance remembers when it
 * last wrote each key (bounded), rather than sending a no-op UPDATE on every request. Committed
 * asynchronously, as verify's: a once-a-second hint.
 */
async function noteServiceKeyUse(db: Db, row: ServiceKeyRow, now: Date): Promise<void> {
  const written = serviceKeyWrites(db);
  const last = written.get(row.id) ?? row.lastUsedAt?.getTime() ?? Number.NEGATIVE_INFINITY;
  if (now.getTime() - last < LAST_USED_RESOLUTION_MS && now.getTime() >= last) return;
  written.delete(row.id);
  if (written.size >= SERVICE_KEY_WRITES_MAX) written.delete(written.keys().next().value!);
  written.set(row.id, now.getTime());
  await touchServiceKey(db, {
    id: row.id,
    now: now.toISOString(),
    staleBefore: new Date(now.getTime() - LAST_USED_RESOLUTION_MS).toISOString(),
  });
}
const serviceKeyWrites = perDatabase((_db: Db) => new Map<string, number>());
const SERVICE_KEY_WRITES_MAX = 10_000;
const touchServiceKey = preparedQuery(
  sql`WITH ${asyncCommitCte}
      UPDATE service_keys SET last_used_at = ${sql.placeholder('now')}::timestamptz
      FROM async_commit
      WHERE id = ${sql.placeholder('id')}::uuid AND revoked_at IS NULL
        AND (last_used_at IS NULL OR last_used_at < ${sql.placeholder('staleBefore')}::timestamptz)`,
);

export function actorOf(p: Principal): Actor {
  return { kind: p.tier === 'service' ? 'service_key' : 'api_key', keyId: p.id, keyPrefix: p.keyPrefix };
}

/** Authentication of bearer tokens, with this process's service-key read cache (service-key-cache.ts). */
export function createAuthService(db: Db) {
  const cache = new ServiceKeyReadCache();
  return {
    authenticate: (token: string, tier: Tier, opts: { readOnly: boolean; now: Date }): Promise<Principal> =>
      authenticate(db, token, tier, { ...opts, cache }),
  };
}

export type AuthService = ReturnType<typeof createAuthService>;

import { apiKeyByHash, serviceKeyByHash } from '../../db/queries/auth.queries.js';
import type { ApiKeyRow } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import type { Actor } from '../audit/events.js';
import { invalidApiKey } from '../errors.js';
import { accepts, keyState } from '../keys/key-state.js';
import { parseToken, type Environment } from './credentials.js';
import { createLastUsed, lastUsedIsFresh, type LastUsed } from './last-used.js';
import { ServiceKeyReadCache } from './service-key-cache.js';

export type Tier = 'service' | 'api';

export interface ServicePrincipal {
  tier: 'service';
  id: string;
  /**
   * Whose child keys this key manages: its rotation chain's first key (service_keys.lineage_id), so
   * that rotating a service key hands its fleet to the successor. Each child records it as its
   * creator.
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

interface AuthenticateOptions {
  readOnly: boolean;
  /** false: the request is no use of an API key (a dry-run check), so last_used_at is not written. */
  noteUse?: boolean;
  now: Date;
  /** Service-key rows of recent reads (service-key-cache.ts); none: every read goes to the database. */
  cache?: ServiceKeyReadCache;
  /** The process's last_used_at writes (last-used.ts); none: a writer of this call's own. */
  lastUsed?: LastUsed;
}

/**
 * Resolves a bearer token for a route of the given tier. Every failure (malformed, bad checksum,
 * unknown, revoked, suspended, expired, wrong tier) is the same invalid_api_key, so the answer never reveals which.
 * The shape, checksum and tier are checked before any database work. API keys are always read
 * from the database, so a revocation is seen by the very next request on every instance; service
 * keys on reads may come from `cache` (see service-key-cache.ts for why that is within spec §2).
 */
export async function authenticate(db: Db, token: string, tier: Tier, opts: AuthenticateOptions): Promise<Principal> {
  const parsed = parseToken(token);
  if (!parsed || parsed.kind !== tier) throw invalidApiKey();
  const lastUsed = opts.lastUsed ?? createLastUsed(db);
  if (tier === 'service') return authenticateServiceKey(db, parsed.tokenHash, lastUsed, opts);
  const row = await apiKeyByHash(db, parsed.tokenHash);
  // Revoked, suspended, expired: the same answer, so it never tells states apart (key-state.ts).
  if (!row || !accepts(keyState(row, opts.now))) throw invalidApiKey();
  // last_used_at, as verify keeps it: at most one write per second per key (last-used.ts).
  if (opts.noteUse !== false && !lastUsedIsFresh(row.lastUsedAt, opts.now)) await lastUsed.touchApiKey(row.id, row.accountId, opts.now);
  return { tier, id: row.id, accountId: row.accountId, environment: row.environment, keyPrefix: row.keyPrefix, key: row };
}

async function authenticateServiceKey(db: Db, tokenHash: string, lastUsed: LastUsed, opts: AuthenticateOptions): Promise<ServicePrincipal> {
  let row = opts.readOnly ? opts.cache?.get(tokenHash, opts.now) : undefined;
  if (!row) {
    row = await serviceKeyByHash(db, tokenHash);
    if (row) opts.cache?.set(tokenHash, row, opts.now);
  }
  if (!row) throw invalidApiKey();
  if (row.revokedAt) {
    const inGrace = opts.now.getTime() - row.revokedAt.getTime() < SERVICE_KEY_READ_GRACE_MS;
    if (!opts.readOnly || !inGrace) throw invalidApiKey();
  } else {
    await lastUsed.noteServiceKeyUse(row, opts.now);
  }
  return { tier: 'service', id: row.id, ownerId: row.lineageId, accountId: row.accountId, environment: row.environment, keyPrefix: row.keyPrefix };
}

export function actorOf(p: Principal): Actor {
  return { kind: p.tier === 'service' ? 'service_key' : 'api_key', keyId: p.id, keyPrefix: p.keyPrefix };
}

/**
 * Authentication of bearer tokens, with this process's service-key read cache (service-key-cache.ts)
 * and last_used_at writes (last-used.ts, shared with verify).
 */
export function createAuthService(db: Db, lastUsed: LastUsed) {
  const cache = new ServiceKeyReadCache();
  return {
    authenticate: (token: string, tier: Tier, opts: { readOnly: boolean; noteUse?: boolean; now: Date }): Promise<Principal> =>
      authenticate(db, token, tier, { ...opts, cache, lastUsed }),
  };
}

export type AuthService = ReturnType<typeof createAuthService>;

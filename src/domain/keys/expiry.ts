import { accountsWithExpiredKeys, markExpiredKeys } from '../../db/queries/expiry.queries.js';
import { NO_REQUEST, recordEvents, withEvents, type EventStore } from '../audit/events.js';
import type { OpContext } from '../context.js';
import { validationError } from '../errors.js';

/*
 * Key expiry. A key past its expires_at is refused at once by key-state.ts, with no job
 * involved; the job here only writes each expired key's agent_key_expired event, once, within a
 * minute, and takes the key out of its service key's list total (child_key_counts counts keys whose
 * expiry is not recorded).
 */

/** The longest expiry: 400 days ahead. */
export const MAX_EXPIRY_MS = 400 * 24 * 3600 * 1000;
export const MIN_TTL_SECONDS = 60;
export const MAX_TTL_SECONDS = 34_560_000;

/** Mint's `expires_at` or `ttl_seconds` (at most one: the schema refuses both) as an instant. */
export function expiryOf(input: { expiresAt?: Date | null; ttlSeconds?: number }, now: Date): Date | null {
  if (input.ttlSeconds !== undefined) return new Date(now.getTime() + input.ttlSeconds * 1000);
  if (input.expiresAt === undefined || input.expiresAt === null) return null;
  checkExpiry(input.expiresAt, now);
  return input.expiresAt;
}

/** An expiry a caller sets must be in the future and at most 400 days ahead (422 otherwise). */
export function checkExpiry(expiresAt: Date, now: Date): void {
  const ahead = expiresAt.getTime() - now.getTime();
  if (ahead <= 0) throw validationError('expires_at must be in the future.', [{ field: 'expires_at', message: 'must be in the future' }]);
  if (ahead > MAX_EXPIRY_MS) throw validationError('expires_at must be at most 400 days ahead.', [{ field: 'expires_at', message: 'must be at most 400 days ahead' }]);
}

/** How many accounts and keys one sweep handles at most; the rest wait for the next (every 15 s). */
const SWEEP_ACCOUNTS = 100;
const SWEEP_KEYS = 500;

/** The job's actor: keyplane itself, as the CLI's events name it. */
const JOB_CTX = (now: Date): OpContext => ({ actor: { kind: 'portal', keyId: null, keyPrefix: 'expiry' }, meta: NO_REQUEST, now });

/**
 * Writes agent_key_expired for the keys past their expiry at `now` that have none yet: per account,
 * one transaction that marks the keys (SKIP LOCKED, so concurrent instances split them) and records
 * their events. Returns how many keys it recorded.
 */
export async function recordExpiries(store: EventStore, now: Date): Promise<number> {
  const ctx = JOB_CTX(now);
  let recorded = 0;
  for (const accountId of await accountsWithExpiredKeys(store.db, now, SWEEP_ACCOUNTS)) {
    recorded += await withEvents(store, accountId, async (tx) => {
      const keys = await markExpiredKeys(tx, accountId, now, SWEEP_KEYS);
      await recordEvents(
        tx,
        keys.map((k) => ({
          accountId,
          eventType: 'agent_key_expired' as const,
          environment: k.environment,
          actor: ctx.actor,
          meta: ctx.meta,
          subjectKeyId: k.id,
          data: { key_prefix: k.keyPrefix, expires_at: k.expiresAt!.toISOString() },
          createdAt: now,
        })),
      );
      return keys.length;
    });
  }
  return recorded;
}

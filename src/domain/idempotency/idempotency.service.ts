import {
  deleteExpiredRecords,
  insertClaim,
  lockOwnClaim,
  recordOf,
  releaseClaim,
  storeResponse,
  takeOverRecord,
  type ClaimRef,
  type IdempotencyRow,
} from '../../db/queries/idempotency.queries.js';
import type { Db } from '../../db/types.js';
import { withEvents, type EventStore, type EventTx } from '../audit/events.js';
import { DomainError } from '../errors.js';
import { newId } from '../ids.js';
import { redactSecrets } from './fingerprint.js';
import { withStoredKeyDefaults } from '../keys/key-object.js';

/*
 * Idempotency for mint and rotate (spec §5), after Brandur Leach's design, the one path of both:
 *   1. claim: insert (service key, Idempotency-Key, fingerprint, locked_at) or find the existing row;
 *      a completed row replays, a different fingerprint is reused, a live lock is in progress;
 *   2. the effect, its compliance event and the stored (redacted) response commit in ONE transaction,
 *      which first re-checks, under the row lock, that the claim is still ours;
 *   3. any failure releases the claim (deletes the row), so nothing is stored for a request that had
 *      no effect and the client may retry with the same key.
 * A process that dies between 1 and 2 leaves a locked row with no effect; its lock expires after
 * LOCK_TIMEOUT_MS and the next request with that key takes it over.
 */

/** Records older than this are ignored and swept (spec §5: kept 12 hours). */
export const IDEMPOTENCY_TTL_MS = 12 * 3600 * 1000;
/**
 * A claim older than this is presumed dead (its process crashed) and may be taken over. It only
 * spans the gap between claim and commit (token generation, one argon2 hash, one short
 * transaction), which takes milliseconds; 15 s is well past the 10 s statement timeout.
 */
export const LOCK_TIMEOUT_MS = 15_000;

export interface IdempotencyOptions {
  /** Overrides LOCK_TIMEOUT_MS (config IDEMPOTENCY_LOCK_TIMEOUT_MS), e.g. so crash tests need not wait 15 s. */
  lockTimeoutMs?: number;
}

/** What the HTTP layer reads off a request: its Idempotency-Key and the request's fingerprint. */
export interface IdempotencyRequest {
  key: string;
  fingerprint: string;
}

export interface IdempotencyScope {
  accountId: string;
  serviceKeyId: string;
  key: string;
  fingerprint: string;
}

export interface StoredResponse {
  status: number;
  body: unknown;
}

export type IdempotentOutcome = StoredResponse & { replayed: boolean };

export interface IdempotentOperation<M> {
  /** Slow work (secrets, hashes) done after the claim and before the transaction. */
  prepare: () => Promise<M>;
  /** The effect and its compliance event, inside the transaction; returns the full response. */
  run: (tx: EventTx, material: M) => Promise<StoredResponse>;
}

type ClaimResult = { claim: ClaimRef } | { replay: StoredResponse };

const inProgress = () => new DomainError('idempotency_in_progress', undefined, [], { retryAfterSeconds: 1 });

async function claim(db: Db, scope: IdempotencyScope, now: Date, lockTimeoutMs: number): Promise<ClaimResult> {
  const id = newId();
  const fresh = { id, accountId: scope.accountId, serviceKeyId: scope.serviceKeyId, idempotencyKey: scope.key, fingerprint: scope.fingerprint };
  if (await insertClaim(db, { ...fresh, createdAt: now, lockedAt: now })) return { claim: { id, lockedAt: now } };

  const row = await recordOf(db, scope.serviceKeyId, scope.key);
  // Released between our insert and this read: start over.
  if (!row) return claim(db, scope, now, lockTimeoutMs);
  if (now.getTime() - row.createdAt.getTime() >= IDEMPOTENCY_TTL_MS) return takeOver(db, row, scope, now, true);
  if (row.fingerprint !== scope.fingerprint) throw new DomainError('idempotency_key_reused');
  if (row.completedAt && row.responseStatus !== null) return { replay: { status: row.responseStatus, body: row.responseBody } };
  if (row.lockedAt && now.getTime() - row.lockedAt.getTime() < lockTimeoutMs) throw inProgress();
  return takeOver(db, row, scope, now, false);
}

/** Takes over an expired record (a new request after 12 h) or a dead claim; exactly one racer wins. */
async function takeOver(db: Db, row: IdempotencyRow, scope: IdempotencyScope, now: Date, expired: boolean): Promise<ClaimResult> {
  const reset = expired
    ? { fingerprint: scope.fingerprint, createdAt: now, lockedAt: now, completedAt: null, responseStatus: null, responseBody: null }
    : { lockedAt: now };
  if (await takeOverRecord(db, row, reset)) return { claim: { id: row.id, lockedAt: now } };
  throw inProgress();
}

/**
 * Runs an operation once per (service key, Idempotency-Key): claim the key, then make the effect in
 * a transaction that re-checks the claim and stores the response; replays a finished request,
 * refuses a reused key or a live claim, takes over a dead or expired one.
 */
export async function executeIdempotent<M>(
  store: EventStore,
  scope: IdempotencyScope,
  now: Date,
  op: IdempotentOperation<M>,
  opts: IdempotencyOptions = {},
): Promise<IdempotentOutcome> {
  const db = store.db;
  const claimed = await claim(db, scope, now, opts.lockTimeoutMs ?? LOCK_TIMEOUT_MS);
  if ('replay' in claimed) return { ...claimed.replay, body: withStoredKeyDefaults(claimed.replay.body), replayed: true };
  const c = claimed.claim;
  try {
    const material = await op.prepare();
    // Linked and durable before disclosed. If linking or the flush fails the effect may still be on
    // disk: the record is complete (release below deletes only incomplete ones), so a retry replays it.
    const response = await withEvents(store, scope.accountId, async (tx) => {
      if (!(await lockOwnClaim(tx, c))) throw inProgress();
      const r = await op.run(tx, material);
      await storeResponse(tx, c, now, r.status, redactSecrets(r.body));
      return r;
    });
    return { ...response, replayed: false };
  } catch (err) {
    // No effect committed: free the key so the client may fix its request and retry. If this fails
    // too (database gone), the lock timeout frees it.
    await releaseClaim(db, c).catch(() => {});
    throw err;
  }
}

/** Deletes records past their 12 hours, in bounded batches; safe to run on every instance at once. */
export async function sweepIdempotencyKeys(db: Db, now: Date, batch = 1000): Promise<number> {
  const cutoff = new Date(now.getTime() - IDEMPOTENCY_TTL_MS);
  let total = 0;
  for (;;) {
    const deleted = await deleteExpiredRecords(db, cutoff, batch);
    total += deleted;
    if (deleted < batch) return total;
  }
}

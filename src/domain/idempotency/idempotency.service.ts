import { createHash } from 'node:crypto';
import { and, eq, sql, type SQL } from 'drizzle-orm';
import { driverError } from '../../db/errors.js';
import type { Db, Tx } from '../../db/types.js';
import { withEvents, type EventStore, type EventTx } from '../audit/events.js';
import { queryRows } from '../../db/statements.js';
import { idempotencyKeys } from '../../db/schema.js';
import { newId } from '../ids.js';
import { DomainError } from '../errors.js';
import { canonicalJson } from '../canonical-json.js';

/*
 * Idempotency for mint and rotate (spec §5), after Brandur Leach's design:
 *   1. claim: insert (service key, Idempotency-Key, fingerprint, locked_at) or find the existing row;
 *      a completed row replays, a different fingerprint is reused, a live lock is in progress;
 *   2. the effect, its compliance event and the stored (redacted) response commit in ONE transaction,
 *      which first re-checks, under the row lock, that the claim is still ours;
 *   3. any failure releases the claim (deletes the row), so nothing is stored for a request that had
 *      no effect and the client may retry with the same key.
 * A process that dies between 1 and 2 leaves a locked row with no effect; its lock expires after
 * LOCK_TIMEOUT_MS and the next request with that key takes it over.
 * An effect that fits in one statement (a mint) folds 1–2 into it: the record is inserted already
 * completed, gated by the unique index, together with the effect (executeIdempotent, runOnce); only
 * a request that finds its key taken goes through the steps above.
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

interface Claim {
  id: string;
  lockedAt: Date;
}

/** A request's identity: method, path (without the /api alias prefix) and canonical JSON body. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  const normalizedPath = path.split('?')[0]!.replace(/^\/api(?=\/v1\/)/, '');
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${normalizedPath} ${canonicalJson(body ?? null)}`)
    .digest('hex');
}

/** Secrets are never stored: a replay returns the first answer without them. */
const SECRET_FIELDS = new Set(['plaintext_key', 'rotation_secret', 'rotationSecret', 'apiKey']);
export function redactSecrets(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactSecrets);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .filter(([k]) => !SECRET_FIELDS.has(k))
      .map(([k, v]) => [k, redactSecrets(v)]),
  );
}

type Row = typeof idempotencyKeys.$inferSelect;
type ClaimResult = { claim: Claim } | { replay: StoredResponse };

async function claim(db: Db, scope: IdempotencyScope, now: Date, lockTimeoutMs: number): Promise<ClaimResult> {
  const id = newId();
  const inserted = await db
    .insert(idempotencyKeys)
    .values({
      id,
      accountId: scope.accountId,
      serviceKeyId: scope.serviceKeyId,
      idempotencyKey: scope.key,
      fingerprint: scope.fingerprint,
      createdAt: now,
      lockedAt: now,
    })
    .onConflictDoNothing({ target: [idempotencyKeys.serviceKeyId, idempotencyKeys.idempotencyKey] })
    .returning({ id: idempotencyKeys.id });
  if (inserted.length === 1) return { claim: { id, lockedAt: now } };

  const [row] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.serviceKeyId, scope.serviceKeyId), eq(idempotencyKeys.idempotencyKey, scope.key)));
  // Released between our insert and this read: start over.
  if (!row) return claim(db, scope, now, lockTimeoutMs);
  if (now.getTime() - row.createdAt.getTime() >= IDEMPOTENCY_TTL_MS) return takeOver(db, row, scope, now, true);
  if (row.fingerprint !== scope.fingerprint) throw new DomainError('idempotency_key_reused');
  if (row.completedAt && row.responseStatus !== null) return { replay: { status: row.responseStatus, body: row.responseBody } };
  if (row.lockedAt && now.getTime() - row.lockedAt.getTime() < lockTimeoutMs) throw inProgress();
  return takeOver(db, row, scope, now, false);
}

const inProgress = () => new DomainError('idempotency_in_progress', undefined, [], { retryAfterSeconds: 1 });

/**
 * Takes over an expired record (a new request after 12 h) or a dead claim, compare-and-set on the
 * values we read, so that of several requests racing for it exactly one wins.
 */
async function takeOver(db: Db, row: Row, scope: IdempotencyScope, now: Date, expired: boolean): Promise<ClaimResult> {
  const sameAsRead = and(
    eq(idempotencyKeys.id, row.id),
    eq(idempotencyKeys.createdAt, row.createdAt),
    row.lockedAt ? eq(idempotencyKeys.lockedAt, row.lockedAt) : sql`${idempotencyKeys.lockedAt} is null`,
  );
  const reset = expired
    ? { fingerprint: scope.fingerprint, createdAt: now, lockedAt: now, completedAt: null, responseStatus: null, responseBody: null }
    : { lockedAt: now };
  const won = await db.update(idempotencyKeys).set(reset).where(sameAsRead).returning({ id: idempotencyKeys.id });
  if (won.length === 1) return { claim: { id: row.id, lockedAt: now } };
  throw inProgress();
}

/** Inside the effect's transaction: the claim must still be ours (locks the record until commit). */
async function assertClaimTx(tx: Tx, c: Claim): Promise<void> {
  // The set_config makes this transaction commit asynchronously; withEvents waits for the linking
  // round's WAL flush before answering (db/durability.ts), so no lock is held across an fsync.
  const rows = await queryRows<{ id: string }>(
    tx,
    sql`select id, set_config('synchronous_commit', 'off', true) from idempotency_keys
         where id = ${c.id} and locked_at = ${c.lockedAt.toISOString()}::timestamptz and completed_at is null
         for update`,
  );
  if (rows.length !== 1) throw inProgress();
}

async function storeTx(tx: Tx, c: Claim, response: StoredResponse, now: Date): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ completedAt: now, lockedAt: null, responseStatus: response.status, responseBody: redactSecrets(response.body) })
    .where(eq(idempotencyKeys.id, c.id));
}

async function release(db: Db, c: Claim): Promise<void> {
  // Only our own claim: after a takeover the row belongs to another request.
  await db
    .delete(idempotencyKeys)
    .where(
      and(
        eq(idempotencyKeys.id, c.id),
        eq(idempotencyKeys.lockedAt, c.lockedAt),
        sql`${idempotencyKeys.completedAt} is null`,
      ),
    );
}

export interface IdempotentOperation<M> {
  /** Slow work (secrets, hashes) done after the claim and before the transaction. */
  prepare: () => Promise<M>;
  /** The effect and its compliance event, inside the transaction; returns the full response. */
  run: (tx: EventTx, material: M) => Promise<StoredResponse>;
  /**
   * Optional: the same effect in ONE statement with its record (see executeIdempotent), given
   * `claim(status, body?)`, the values of the claim_* placeholders of this module's CTEs. Either its
   * statement starts `with ${COMPLETED_CLAIM_CTE}` (the response is known before the effect: pass
   * its body) and the effect's CTEs select from `claim`; or the effect is gated on UNCLAIMED and the
   * record is inserted by completedRecordCte, whose body the statement makes from the effect's rows.
   * Returns the response if it wrote, null if it wrote nothing; it does its own preparation.
   */
  runOnce?: (claim: (status: number, body?: unknown) => Record<string, unknown>) => Promise<StoredResponse | null>;
}

export type IdempotentOutcome = StoredResponse & { replayed: boolean };

const p = (name: string) => sql.placeholder(name);
const RECORD_COLUMNS = sql.raw(
  'id, account_id, service_key_id, idempotency_key, fingerprint, created_at, completed_at, response_status, response_body',
);
const recordValues = (body: SQL) =>
  sql`${p('claim_id')}::uuid, ${p('claim_account_id')}::uuid, ${p('claim_service_key_id')}::uuid, ${p('claim_key')}::text,
      ${p('claim_fingerprint')}::text, ${p('claim_at')}::timestamptz, ${p('claim_at')}::timestamptz,
      ${p('claim_status')}::int, ${body}`;

/**
 * The record of a request whose response is known before its effect (a mint), inserted completed in
 * the effect's statement, or not at all if the scope's key is taken (by a finished request, a live
 * claim, an expired record, or a concurrent insert, which this waits for): `ON CONFLICT DO NOTHING`
 * on the unique (service key, Idempotency-Key) index is the whole claim.
 */
export const COMPLETED_CLAIM_CTE = sql`claim as (
    insert into idempotency_keys (${RECORD_COLUMNS})
    values (${recordValues(sql`${p('claim_body')}::jsonb`)})
    on conflict (service_key_id, idempotency_key) do nothing
    returning id)`;

/** True while the scope's key has no record (committed before the statement began). */
export const UNCLAIMED = sql`not exists (select 1 from idempotency_keys
    where service_key_id = ${p('claim_service_key_id')}::uuid and idempotency_key = ${p('claim_key')}::text)`;

/**
 * The record of a request whose response the statement itself makes (a rotation, from the locked
 * row): one completed record per row of `from`, with `body` (SQL of the redacted response as
 * jsonb). The effect is gated on UNCLAIMED; a concurrent request with the same key that got past
 * that check too makes this insert fail on the unique index, which aborts the whole statement.
 */
export function completedRecordCte(name: string, body: SQL, from: SQL): SQL {
  return sql`${sql.raw(name)} as (
    insert into idempotency_keys (${RECORD_COLUMNS})
    select ${recordValues(body)} from ${from}
    returning id)`;
}

/** The claim_* values of one request; without a body, the statement makes the stored body itself. */
function claimValues(scope: IdempotencyScope, now: Date, status: number, body?: unknown): Record<string, unknown> {
  return {
    claim_id: newId(),
    claim_account_id: scope.accountId,
    claim_service_key_id: scope.serviceKeyId,
    claim_key: scope.key,
    claim_fingerprint: scope.fingerprint,
    claim_at: now.toISOString(),
    claim_status: status,
    claim_body: body === undefined ? null : JSON.stringify(redactSecrets(body)),
  };
}

/** The unique (service key, Idempotency-Key) index refused a record: another request has this key. */
const isKeyTaken = (err: unknown) => {
  const e = driverError(err);
  return e.code === '23505' && (e.message ?? '').includes('idempotency_keys_scope_uq');
};

/**
 * Runs an operation once per (service key, Idempotency-Key). With `runOnce`, a first request is one
 * statement: effect, event and completed record commit together, then the event is linked and
 * flushed (a mint is one round trip plus its share of a linking round instead of seven). Whenever
 * that statement writes nothing (the key is taken, or the effect found nothing to act on, such as
 * an already rotated key that a retry names) the general path below decides: it replays a
 * finished request, refuses a reused key or a live claim, takes over a dead or expired one, and
 * answers errors.
 */
export async function executeIdempotent<M>(
  store: EventStore,
  scope: IdempotencyScope,
  now: Date,
  op: IdempotentOperation<M>,
  opts: IdempotencyOptions = {},
): Promise<IdempotentOutcome> {
  if (op.runOnce) {
    let response: StoredResponse | null;
    try {
      response = await op.runOnce((status, body) => claimValues(scope, now, status, body));
    } catch (err) {
      if (!isKeyTaken(err)) throw err;
      response = null;
    }
    if (response !== null) {
      // Linked and durable before disclosed (domain/event-linker.ts).
      await store.linker.link(scope.accountId);
      return { ...response, replayed: false };
    }
  }
  return claimThenRun(store, scope, now, op, opts);
}

/** The general path: claim the key, make the effect in a transaction that completes the claim. */
async function claimThenRun<M>(
  store: EventStore,
  scope: IdempotencyScope,
  now: Date,
  op: IdempotentOperation<M>,
  opts: IdempotencyOptions,
): Promise<IdempotentOutcome> {
  const db = store.db;
  const claimed = await claim(db, scope, now, opts.lockTimeoutMs ?? LOCK_TIMEOUT_MS);
  if ('replay' in claimed) return { ...claimed.replay, replayed: true };
  const c = claimed.claim;
  try {
    const material = await op.prepare();
    // Linked and durable before disclosed. If linking or the flush fails the effect may still be on
    // disk: the record is complete (release below deletes only incomplete ones), so a retry replays it.
    const response = await withEvents(store, scope.accountId, async (tx) => {
      await assertClaimTx(tx, c);
      const r = await op.run(tx, material);
      await storeTx(tx, c, r, now);
      return r;
    });
    return { ...response, replayed: false };
  } catch (err) {
    // No effect committed: free the key so the client may fix its request and retry. If this fails
    // too (database gone), the lock timeout frees it.
    await release(db, c).catch(() => {});
    throw err;
  }
}

/** Deletes records past their 12 hours, in bounded batches; safe to run on every instance at once. */
export async function sweepIdempotencyKeys(db: Db, now: Date, batch = 1000): Promise<number> {
  const cutoff = new Date(now.getTime() - IDEMPOTENCY_TTL_MS);
  let total = 0;
  for (;;) {
    const rows = await queryRows<{ id: string }>(
      db,
      sql`delete from idempotency_keys where id in (
            select id from idempotency_keys where created_at < ${cutoff.toISOString()}::timestamptz
            limit ${batch} for update skip locked)
          returning id`,
    );
    total += rows.length;
    if (rows.length < batch) return total;
  }
}


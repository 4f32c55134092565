import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { BatchedLookup, perDatabase } from '../db/batched-lookup.js';
import { asyncCommitCte, flushWalShared } from '../db/durability.js';
import { preparedQuery, queryRows } from '../db/raw.js';
import type { ApiKeyRow } from '../db/schema.js';
import { newId } from './credentials.js';
import { DomainError } from './errors.js';
import { cycleStartFor, keyObjectJson, SPEND_CYCLE_MS } from './key-view.js';

/*
 * Monthly spend for data-plane debits (issue 9).
 *
 * Debits are applied by ONE SQL statement per batch (keyplane_debit_batch, migration 0004), so they
 * are atomic without an explicit transaction (no BEGIN/COMMIT round trips): the function takes each
 * key's row with FOR UPDATE, so it sees the latest committed spend, revocation and cap, and decides
 * each debit in order against the spend left by the ones before it, so the cap can never be
 * overrun. Ledger rows and spend are written by the same statement and commit together or not at all.
 *
 * The ledger is keyed by (api_key_id, request_id), but spend follows the agent across rotations
 * (rotateKeyTx copies monthly_spend_cents and spend_cycle_start to the successor). So:
 *  - a retried request_id is looked up over the whole rotation chain (rotated_from, recursively),
 *    so that a retry made with the successor key after a rotation does not debit twice;
 *  - the invariant is: the active key's monthly_spend_cents (while its spend_cycle_start is the
 *    current cycle) = the sum of cost_cents of the ledger rows of every key with the same agent_id
 *    whose cycle_start is that cycle. See agentLedgerSum.
 * Only one key of a chain is active at a time, and rotation locks the old row, so debits of one
 * agent are serialised by row locks even across a rotation.
 */

/** The largest single debit: the largest cap a key can have (api_keys_cap_ck). */
export const MAX_COST_CENTS = 100_000_000;

/**
 * last_used_at is written at most once per second per key: a verify that finds it fresher than this
 * skips the write, so a hot key costs one row write per second, not one per verify.
 */
export const LAST_USED_RESOLUTION_MS = 1_000;

export type DebitOutcome =
  | { kind: 'debited'; row: ApiKeyRow }
  | { kind: 'replayed'; row: ApiKeyRow }
  | { kind: 'cap_exceeded'; row: ApiKeyRow; spent: number; cap: number; cycleResetAt: Date }
  | { kind: 'revoked' };

/** One row of keyplane_debit_batch (migration 0004): an item's outcome and what it saw. */
interface BatchRow {
  o_ord: number;
  o_outcome: 'replayed' | 'revoked' | 'cap_exceeded' | 'debited';
  o_prior_cost: number | null;
  o_spent: number | string | null;
  o_cap: number | null;
  o_spend_stored: number | string | null;
  o_cycle_start: Date | string | null;
  o_monthly_spend_cents: number | string | null;
  o_spend_cycle_start: Date | string | null;
  o_last_used_at: Date | string | null;
}

const toDate = (v: Date | string | null): Date | null => (v === null ? null : v instanceof Date ? v : new Date(v));
const isoParam = (d: Date) => d.toISOString();

/** A debit waiting for its batch. */
interface PendingDebit {
  key: ApiKeyRow;
  requestId: string;
  cost: number;
  now: Date;
}

/** The most debits one statement applies; more wait for the next. */
const MAX_BATCH = 200;

/**
 * Checks the cap and debits cost cents from the key's current cycle in one atomic step, recording
 * the debit in the ledger under requestId. A request_id already in the chain's ledger debits nothing
 * and answers 'replayed' (a different cost for the same request_id is a caller bug: 409).
 *
 * Group commit, as the event linker does for events: an instance applies its debits one statement
 * at a time (keyplane_debit_batch, migration 0004; the batching is db/batched-lookup.ts, as for
 * verify's reads), whatever their keys; debits arriving meanwhile wait for the next statement. That
 * statement takes each key's row lock once, in key order, and decides the key's waiting debits in
 * arrival order, exactly as each would have been decided alone. Across instances the row locks
 * order the statements. Before (0003) the batches were per key: with the load spread over many keys
 * most statements carried one debit, each with its own round trip, call, plan and commit.
 */
export function debit(db: Db, key: ApiKeyRow, requestId: string, cost: number, now: Date): Promise<DebitOutcome> {
  return debitBatches(db).lookup({ key, requestId, cost, now });
}

const debitBatches = perDatabase(
  (db: Db) =>
    new BatchedLookup<PendingDebit, DebitOutcome>(async (batch) => {
      const outcomes = await applyBatch(db, batch);
      // The statement committed asynchronously, releasing the row locks: the next batch may start
      // now, while this one waits for its flush. Nothing is answered before it is durable.
      const durable = flushWalShared(db);
      return outcomes.map((o) =>
        durable.then(() => {
          if (o instanceof Error) throw o;
          return o;
        }),
      );
    }, MAX_BATCH),
);

const debitBatch = preparedQuery<BatchRow>(sql`select * from keyplane_debit_batch(${sql.placeholder('items')}::jsonb)`);

async function applyBatch(db: Db, batch: PendingDebit[]): Promise<(DebitOutcome | Error)[]> {
  const items = batch.map((p, ord) => ({
    ord,
    key_id: p.key.id,
    account_id: p.key.accountId,
    id: newId(),
    request_id: p.requestId,
    cost: p.cost,
    cycle: isoParam(cycleStartFor(p.key.cycleAnchor, p.now)),
    at: isoParam(p.now),
    stale_before: isoParam(new Date(p.now.getTime() - LAST_USED_RESOLUTION_MS)),
  }));
  const rows = await debitBatch(db, { items: JSON.stringify(items) });
  const byOrd = new Map(rows.map((r) => [Number(r.o_ord), r]));
  return batch.map((p, ord) => {
    const r = byOrd.get(ord);
    // No row: the key row is gone (rows are never deleted; defensive).
    if (!r) return { kind: 'revoked' };
    return outcomeOf(p, r);
  });
}

function outcomeOf(p: PendingDebit, r: BatchRow): DebitOutcome | Error {
  switch (r.o_outcome) {
    case 'replayed':
      if (Number(r.o_prior_cost) !== p.cost) {
        return new DomainError('idempotency_key_reused', 'This request_id was already debited with a different cost_cents.', [
          { field: 'request_id', message: 'already used with a different cost_cents' },
        ]);
      }
      return { kind: 'replayed', row: p.key };
    case 'revoked':
      return { kind: 'revoked' };
    case 'cap_exceeded': {
      const cap = Number(r.o_cap);
      const cycle = cycleStartFor(p.key.cycleAnchor, p.now);
      const row: ApiKeyRow = { ...p.key, monthlyCapCents: cap, monthlySpendCents: Number(r.o_spend_stored), spendCycleStart: toDate(r.o_cycle_start) };
      return { kind: 'cap_exceeded', row, spent: Number(r.o_spent), cap, cycleResetAt: new Date(cycle.getTime() + SPEND_CYCLE_MS) };
    }
    case 'debited':
      return {
        kind: 'debited',
        row: {
          ...p.key,
          monthlySpendCents: Number(r.o_monthly_spend_cents),
          spendCycleStart: toDate(r.o_spend_cycle_start),
          lastUsedAt: toDate(r.o_last_used_at),
        },
      };
  }
}

/**
 * Sets last_used_at = now unless it was set within the last second (or the key was revoked
 * meanwhile), and returns the key as verify answers it (JSON text, key-view.ts: keyObjectJson);
 * null when nothing was written. Callers skip this entirely when the row they read is already
 * fresh, so the common case costs no statement at all.
 */
export function touchLastUsed(db: Db, keyId: string, accountId: string, now: Date): Promise<string | null> {
  // Verifies of a hot key read its row together (batched), so once a second dozens of them find it
  // stale at once: they share the one write already in flight for the key instead of each sending
  // an UPDATE that would find nothing left to do.
  const flights = touchesInFlight(db);
  const pending = flights.get(keyId);
  if (pending) return pending;
  const touch = touchStatement(db, { id: keyId, accountId, now: isoParam(now), staleBefore: isoParam(new Date(now.getTime() - LAST_USED_RESOLUTION_MS)) })
    .then(([row]) => row?.key ?? null)
    .finally(() => flights.delete(keyId));
  flights.set(keyId, touch);
  return touch;
}
const touchesInFlight = perDatabase((_db: Db) => new Map<string, Promise<string | null>>());

// Committed asynchronously (no wait for the WAL fsync, ~8 ms on this machine's disk): last_used_at
// is a once-a-second hint, and a crash that loses the last few hundred milliseconds of it loses
// nothing a caller relies on. Waiting for the fsync made the verify that did the write, one per key
// per second, the slowest 1 % of verifies (the p99 at 50 connections).
const touchStatement = preparedQuery<{ key: string }>(
  sql`WITH ${asyncCommitCte}
      UPDATE api_keys k SET last_used_at = ${sql.placeholder('now')}::timestamptz
      FROM async_commit
      WHERE k.id = ${sql.placeholder('id')}::uuid AND k.account_id = ${sql.placeholder('accountId')}::uuid AND k.revoked_at IS NULL
        AND (k.last_used_at IS NULL OR k.last_used_at < ${sql.placeholder('staleBefore')}::timestamptz)
      RETURNING ${keyObjectJson('k', sql.placeholder('now'), { withAccountId: true })} AS key`,
);

/**
 * The ledger's sum for an agent's cycle: over every key of the rotation chain (same agent_id), the
 * debits recorded with that cycle_start. Equals the active key's monthly_spend_cents for its cycle.
 */
export async function agentLedgerSum(db: Db, accountId: string, agentId: string, cycleStart: Date): Promise<number> {
  const rows = await queryRows<{ total: number | string }>(
    db,
    sql`SELECT coalesce(sum(l.cost_cents), 0)::bigint AS total
        FROM spend_ledger l JOIN api_keys k ON k.id = l.api_key_id
        WHERE l.account_id = ${accountId}::uuid AND k.account_id = ${accountId}::uuid
          AND k.agent_id = ${agentId}::uuid AND l.cycle_start = ${isoParam(cycleStart)}::timestamptz`,
  );
  return Number(rows[0]?.total ?? 0);
}

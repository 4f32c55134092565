import { sql } from 'drizzle-orm';
import type { Db } from '../../db/types.js';
import { BatchedLookup, perDatabase } from '../../db/batched-lookup.js';
import { jsonIso } from '../../db/json-sql.js';
import { asyncCommitCte } from '../../db/durability.js';
import { HeldConnection } from '../../db/held-connection.js';
import { poolOf, preparedQuery, queryRows } from '../../db/statements.js';
import type { Permission } from '../../db/schema.js';
import { newId } from '../ids.js';
import { DomainError } from '../errors.js';
import { keyObjectJson, keyObjectJsonParts, SPEND_CYCLE_MS } from '../keys/key-object.js';

/*
 * Monthly spend for data-plane debits (issue 9).
 *
 * Debits are applied by ONE SQL statement per batch (keyplane_verify_debit_batch_v2, migration 0014),
 * so they are atomic without an explicit transaction (no BEGIN/COMMIT round trips): the function
 * finds each key by its token hash and takes its row with FOR UPDATE, so it sees the latest
 * committed spend, revocation, tier, line and cap, and decides each debit in order against the
 * spend left by the ones before it, so the cap can never be overrun. Ledger rows and spend are
 * written by the same statement and commit together or not at all.
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

/** A verification with a debit, as keyplane_verify_debit_batch_v2 (migration 0014) takes it. */
export interface DebitRequest {
  tokenHash: string;
  /** The tiers that allow the verb (verify.service.ts: TIER_VERBS). */
  tiers: readonly Permission[];
  /** The requested line, lowercase (line_id is a uuid, which Postgres writes lowercase); null when none. */
  line: string | null;
  /** Whether a request naming no line is in a line-scoped key's scope (verify.service.ts: inScope). */
  lineOptional: boolean;
  requestId: string;
  cost: number;
  now: Date;
}

/** What became of it; keyJson is the key as verify answers it (key-view.ts: keyObjectJson), after the debit. */
export type DebitOutcome =
  | { kind: 'invalid' }
  | { kind: 'refused'; permissions: Permission; lineId: string | null; keyJson: string }
  | { kind: 'replayed'; keyJson: string }
  | { kind: 'cap_exceeded'; spent: number; cap: number; cycleResetAt: Date; keyJson: string }
  | { kind: 'debited'; keyJson: string };

/**
 * One row of the batch statement: an item's outcome, what it saw, and the key after it, as what
 * changed from item to item (spend, last_used) plus, on the key's first row, the rest of the key
 * object's JSON (head, middle, tail: key-view.ts, keyObjectJsonParts) and the key's tier and line.
 */
interface BatchRow {
  o_ord: number;
  o_outcome: 'invalid' | 'refused' | 'replayed' | 'cap_exceeded' | 'debited';
  o_prior_cost: number | null;
  o_spent: number | string | null;
  o_cap: number | null;
  o_cycle: Date | string | null;
  key_id: string | null;
  spend: number | string | null;
  last_used: string | null;
  permissions: Permission | null;
  line_id: string | null;
  head: string | null;
  middle: string | null;
  tail: string | null;
}

/** The part of a key's answer that is the same for all its items in one statement. */
interface KeyParts {
  permissions: Permission;
  lineId: string | null;
  head: string;
  middle: string;
  tail: string;
}

const isoParam = (d: Date) => d.toISOString();

/** The most debits one statement applies; more wait for the next. */
const MAX_BATCH = 200;

/**
 * Verifies a key for a verb and line and debits cost cents from its current cycle, in one atomic
 * step under the key's row lock: unknown or revoked answers invalid, a tier or line that does not
 * allow the action answers refused, a request_id already in the chain's ledger debits nothing and
 * answers replayed (with a different cost it is a caller bug: 409), and a cost that would take the
 * cycle's spend over the cap answers cap_exceeded with nothing debited.
 *
 * Group commit, as the event linker does for events: an instance applies its debits one statement
 * at a time (keyplane_verify_debit_batch_v2, migration 0014; the batching is db/batched-lookup.ts),
 * whatever their keys; debits arriving meanwhile wait for the next statement. That statement takes
 * each key's row lock once, in key order, and decides the key's waiting debits in arrival order,
 * exactly as each would have been decided alone. Across instances the row locks order the
 * statements. It commits synchronously, so an answer is durable before it is given (migration 0013
 * says why this costs nothing here).
 */
export async function checkAndDebit(db: Db, request: DebitRequest): Promise<DebitOutcome> {
  const outcome = await debitBatches(db).lookup(request);
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

const debitBatches = perDatabase(
  (db: Db) =>
    new BatchedLookup<DebitRequest, DebitOutcome | Error>((batch) => applyBatch(db, batch), MAX_BATCH, () => debitConnection(db)?.release()),
);

/** Server mode: the connection the debit batches keep while they run back to back (db/held-connection.ts). */
const debitConnection = perDatabase((db: Db) => {
  const pool = poolOf(db);
  return pool ? new HeldConnection(pool) : null;
});

/** Runs the batch statement, on the held connection in server mode (submitted before any await). */
function runDebitBatch(db: Db, values: { items: string }): Promise<BatchRow[]> {
  const held = debitConnection(db);
  return held ? held.run((client) => debitBatch.on(client, values)) : debitBatch(db, values);
}

// The key object is keyObjectJson (key-view.ts) of the row as the item left it. Postgres builds the
// parts that stay the same for a key through the statement once per key (on the key's first row),
// and on every row only the spend shown and last_used_at; applyBatch joins them. The function is
// named before the long expressions so that pg_stat_activity, which keeps a statement's first 1 kB,
// shows it.
const debitBatch = (() => {
  const parts = keyObjectJsonParts('r', { withAccountId: true });
  return preparedQuery<BatchRow>(
    sql`select b.o_ord, b.o_outcome, b.o_prior_cost, b.o_spent, b.o_cap, b.o_cycle, b.o_key_id as key_id, b.o_spend as spend,
          ${sql.raw(jsonIso('b.o_last_used'))} as last_used, k.permissions, k.line_id, k.head, k.middle, k.tail
        from keyplane_verify_debit_batch_v2(${sql.placeholder('items')}::jsonb) b
        left join lateral (
          select r.permissions, r.line_id, ${parts.head} as head, ${parts.middle} as middle, ${parts.tail} as tail
          from (select (b.o_key).*) r where r.id is not null
        ) k on true`,
  );
})();

async function applyBatch(db: Db, batch: DebitRequest[]): Promise<(DebitOutcome | Error)[]> {
  const items = batch.map((p, ord) => ({
    ord,
    token_hash: p.tokenHash,
    tiers: p.tiers,
    line: p.line,
    line_optional: p.lineOptional,
    id: newId(),
    request_id: p.requestId,
    cost: p.cost,
    at: isoParam(p.now),
    stale_before: isoParam(new Date(p.now.getTime() - LAST_USED_RESOLUTION_MS)),
  }));
  const rows = await runDebitBatch(db, { items: JSON.stringify(items) });
  const byOrd = new Map<number, BatchRow>();
  const keys = new Map<string, KeyParts>();
  for (const r of rows) {
    byOrd.set(Number(r.o_ord), r);
    if (r.key_id && r.head !== null) keys.set(r.key_id, { permissions: r.permissions!, lineId: r.line_id, head: r.head, middle: r.middle!, tail: r.tail! });
  }
  return batch.map((p, ord) => {
    const r = byOrd.get(ord);
    if (!r) return new Error(`keyplane_verify_debit_batch_v2 answered no row for item ${ord}`);
    const outcome = r.o_outcome;
    if (outcome === 'invalid') return { kind: 'invalid' };
    const key = keys.get(r.key_id!);
    if (!key) return new Error(`keyplane_verify_debit_batch_v2 sent no key for item ${ord}`);
    return outcomeOf(p, outcome, r, key, key.head + String(r.spend) + key.middle + r.last_used + key.tail);
  });
}

/** An item that found its key (an invalid one has none): its outcome, with the key as the item left it. */
function outcomeOf(
  p: DebitRequest,
  outcome: Exclude<BatchRow['o_outcome'], 'invalid'>,
  r: BatchRow,
  key: KeyParts,
  keyJson: string,
): DebitOutcome | Error {
  switch (outcome) {
    case 'refused':
      return { kind: 'refused', permissions: key.permissions, lineId: key.lineId, keyJson };
    case 'replayed':
      if (Number(r.o_prior_cost) !== p.cost) {
        return new DomainError('idempotency_key_reused', 'This request_id was already debited with a different cost_cents.', [
          { field: 'request_id', message: 'already used with a different cost_cents' },
        ]);
      }
      return { kind: 'replayed', keyJson };
    case 'cap_exceeded': {
      const cycle = r.o_cycle instanceof Date ? r.o_cycle : new Date(r.o_cycle!);
      return { kind: 'cap_exceeded', spent: Number(r.o_spent), cap: Number(r.o_cap), cycleResetAt: new Date(cycle.getTime() + SPEND_CYCLE_MS), keyJson };
    }
    case 'debited':
      return { kind: 'debited', keyJson };
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

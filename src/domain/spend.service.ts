import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { asyncCommitCte, flushWalShared } from '../db/durability.js';
import { queryRows, queryRowsPrepared } from '../db/raw.js';
import type { ApiKeyRow } from '../db/schema.js';
import { newId } from './credentials.js';
import { DomainError } from './errors.js';
import { cycleStartFor, SPEND_CYCLE_MS } from './key-view.js';

/*
 * Monthly spend for data-plane debits (issue 9).
 *
 * A debit is ONE SQL statement, so it is atomic without an explicit transaction (no BEGIN/COMMIT
 * round trips): the UPDATE of the key row takes the row lock, and under READ COMMITTED Postgres
 * re-evaluates its WHERE clause (revoked_at, the cap check) against the latest committed version of
 * the row after waiting for that lock. So of N concurrent debits, each sees the spend the previous
 * one committed, and the cap can never be overrun. The ledger row is inserted by the same statement,
 * from the UPDATE's RETURNING, so spend and ledger commit together or not at all.
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

interface DebitRow {
  prior_cost: number | string | null;
  inserted: number | string;
  monthly_spend_cents: number | string | null;
  spend_cycle_start: Date | string | null;
  last_used_at: Date | string | null;
  snap_revoked_at: Date | string | null;
  snap_spent: number | string;
  snap_spend_stored: number | string;
  snap_cap: number | string | null;
  snap_cycle_start: Date | string | null;
}

const toDate = (v: Date | string | null): Date | null => (v === null ? null : v instanceof Date ? v : new Date(v));
const isoParam = (d: Date) => d.toISOString();

/** How many times a debit is re-tried after losing a race (a unique violation, a cap raised meanwhile). */
const DEBIT_ATTEMPTS = 3;

function isUniqueViolation(err: unknown): boolean {
  for (let e = err as { code?: string; cause?: unknown } | undefined, i = 0; e && i < 4; e = e.cause as typeof e, i++) {
    if (e.code === '23505') return true;
  }
  return false;
}

/**
 * Checks the cap and debits cost cents from the key's current cycle in one atomic step, recording
 * the debit in the ledger under requestId. A request_id already in the chain's ledger debits nothing
 * and answers 'replayed' (a different cost for the same request_id is a caller bug: 409).
 */
export async function debit(db: Db, key: ApiKeyRow, requestId: string, cost: number, now: Date): Promise<DebitOutcome> {
  const cycle = cycleStartFor(key.cycleAnchor, now);
  const cycleResetAt = new Date(cycle.getTime() + SPEND_CYCLE_MS);
  for (let attempt = 1; ; attempt++) {
    let r: DebitRow;
    try {
      // A named prepared statement in server mode: the recursive CTE is planned once per connection.
      const rows = await queryRowsPrepared<DebitRow>(db, debitStatement(key, requestId, cost, cycle, now));
      if (!rows[0]) return { kind: 'revoked' }; // rows are never deleted; defensive
      r = rows[0];
    } catch (err) {
      // A concurrent debit with the same (key, request_id) committed after our snapshot: retry,
      // and the fresh snapshot finds it as the prior debit.
      if (isUniqueViolation(err) && attempt < DEBIT_ATTEMPTS) continue;
      throw err;
    }
    if (r.prior_cost !== null) {
      if (Number(r.prior_cost) !== cost) {
        throw new DomainError('idempotency_key_reused', 'This request_id was already debited with a different cost_cents.', [
          { field: 'request_id', message: 'already used with a different cost_cents' },
        ]);
      }
      // The prior debit may still be awaiting its flush in another request: answer once it is durable.
      await flushWalShared(db);
      return { kind: 'replayed', row: key };
    }
    if (Number(r.inserted) === 1) {
      // The statement committed asynchronously, releasing the key's row lock before its WAL flush;
      // answer only once the debit is durable (see db/durability.ts). Concurrent debits share one flush.
      await flushWalShared(db);
      return {
        kind: 'debited',
        row: {
          ...key,
          monthlySpendCents: Number(r.monthly_spend_cents),
          spendCycleStart: toDate(r.spend_cycle_start),
          lastUsedAt: toDate(r.last_used_at),
        },
      };
    }
    // Nothing debited. The statement's snapshot says why, consistently: spend and ledger commit
    // together, so a snapshot that shows the spend also shows any prior debit of this request.
    if (r.snap_revoked_at !== null) return { kind: 'revoked' };
    const spent = Number(r.snap_spent);
    const cap = r.snap_cap === null ? null : Number(r.snap_cap);
    if (cap !== null && spent + cost > cap) {
      const row: ApiKeyRow = { ...key, monthlyCapCents: cap, monthlySpendCents: Number(r.snap_spend_stored), spendCycleStart: toDate(r.snap_cycle_start) };
      return { kind: 'cap_exceeded', row, spent, cap, cycleResetAt };
    }
    // The snapshot says it fits, yet the UPDATE (which re-reads the row after waiting for its lock)
    // refused: another debit, revocation or PATCH committed meanwhile. Look again with a fresh
    // snapshot. Losing that race three times running means the row is churning: retry shortly.
    if (attempt >= DEBIT_ATTEMPTS) throw new DomainError('service_unavailable', undefined, [], { 'retry-after': '1' });
  }
}

/*
 * spend_cycle_start >= $cycle keeps the stored spend when the row's cycle is current (or, with an
 * instance whose clock runs slightly behind, newer); anything older is a past cycle and counts 0.
 * GREATEST never moves the stored cycle backwards. GREATEST(NULL, x) = x in Postgres.
 */
function debitStatement(key: ApiKeyRow, requestId: string, cost: number, cycle: Date, now: Date) {
  const c = isoParam(cycle);
  const n = isoParam(now);
  const staleBefore = isoParam(new Date(now.getTime() - LAST_USED_RESOLUTION_MS));
  const spendInCycle = sql`(CASE WHEN spend_cycle_start >= ${c}::timestamptz THEN monthly_spend_cents ELSE 0 END)`;
  return sql`
    WITH RECURSIVE chain(id, rotated_from) AS (
      SELECT id, rotated_from FROM api_keys WHERE id = ${key.id}::uuid AND account_id = ${key.accountId}::uuid
      UNION ALL
      SELECT a.id, a.rotated_from FROM api_keys a JOIN chain ON a.id = chain.rotated_from
    ),
    prior AS (
      SELECT l.cost_cents FROM spend_ledger l
      WHERE l.request_id = ${requestId}::text AND l.api_key_id IN (SELECT id FROM chain)
      LIMIT 1
    ),
    upd AS (
      UPDATE api_keys SET
        monthly_spend_cents = ${spendInCycle} + ${cost}::int,
        spend_cycle_start = GREATEST(spend_cycle_start, ${c}::timestamptz),
        last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ${staleBefore}::timestamptz
                            THEN ${n}::timestamptz ELSE last_used_at END
      WHERE id = ${key.id}::uuid AND account_id = ${key.accountId}::uuid AND revoked_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM prior)
        AND (monthly_cap_cents IS NULL OR ${spendInCycle} + ${cost}::int <= monthly_cap_cents)
      RETURNING id, account_id, monthly_spend_cents, spend_cycle_start, last_used_at
    ),
    ins AS (
      INSERT INTO spend_ledger (id, account_id, api_key_id, request_id, cost_cents, cycle_start, created_at)
      SELECT ${newId()}::uuid, account_id, id, ${requestId}::text, ${cost}::int, spend_cycle_start, ${n}::timestamptz FROM upd
      RETURNING id
    ),
    ${asyncCommitCte}
    SELECT (SELECT cost_cents FROM prior) AS prior_cost,
           (SELECT count(*) FROM ins)::int AS inserted,
           upd.monthly_spend_cents, upd.spend_cycle_start, upd.last_used_at,
           snap.revoked_at AS snap_revoked_at, (CASE WHEN snap.spend_cycle_start >= ${c}::timestamptz THEN snap.monthly_spend_cents ELSE 0 END) AS snap_spent,
           snap.monthly_spend_cents AS snap_spend_stored, snap.monthly_cap_cents AS snap_cap,
           snap.spend_cycle_start AS snap_cycle_start
    FROM api_keys AS snap CROSS JOIN async_commit LEFT JOIN upd ON true
    WHERE snap.id = ${key.id}::uuid AND snap.account_id = ${key.accountId}::uuid`;
}

/**
 * Sets last_used_at = now unless it was set within the last second (or the key was revoked
 * meanwhile). Returns the row as it now stands. Callers skip this entirely when the row they read
 * is already fresh, so the common case costs no statement at all.
 */
export async function touchLastUsed(db: Db, key: ApiKeyRow, now: Date): Promise<ApiKeyRow> {
  if (key.lastUsedAt && now.getTime() - key.lastUsedAt.getTime() < LAST_USED_RESOLUTION_MS) return key;
  const staleBefore = isoParam(new Date(now.getTime() - LAST_USED_RESOLUTION_MS));
  const rows = await queryRows<{ last_used_at: Date | string }>(
    db,
    sql`UPDATE api_keys SET last_used_at = ${isoParam(now)}::timestamptz
        WHERE id = ${key.id}::uuid AND account_id = ${key.accountId}::uuid AND revoked_at IS NULL
          AND (last_used_at IS NULL OR last_used_at < ${staleBefore}::timestamptz)
        RETURNING last_used_at`,
  );
  return rows[0] ? { ...key, lastUsedAt: toDate(rows[0].last_used_at) } : key;
}

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

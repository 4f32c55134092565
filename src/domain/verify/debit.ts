import { verifyDebitBatch, type DebitItem, type DebitRow } from '../../db/queries/spend.queries.js';
import type { ApiKeyRow, Permission } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { BatchedLookup } from '../../db/group-commit.js';
import { LAST_USED_RESOLUTION_MS } from '../auth/last-used.js';
import { DomainError } from '../errors.js';
import { newId } from '../ids.js';
import { SPEND_CYCLE_MS } from '../keys/key-object.js';
import type { RefusalReason } from '../keys/key-state.js';
import { lineOptional, tiersAllowing, type Verb } from './rules.js';
import { verifiedKey, type VerifiedKey } from './verified-key.js';
import type { Metrics } from '../metrics/metrics.js';

/*
 * Monthly spend for data-plane debits.
 *
 * Debits are applied by ONE SQL statement per batch (keyplane_verify_debit_batch,
 * src/db/sql/verify_debit_batch.sql), so they are atomic without an explicit transaction (no
 * BEGIN/COMMIT round trips): the function finds each key by its token hash and takes its row with
 * FOR UPDATE, so it sees the latest committed spend, revocation, tier, line and cap, and decides each
 * debit in order against the spend left by the ones before it, so the cap can never be overrun.
 * Ledger rows and spend are written by the same statement and commit together or not at all.
 *
 * The ledger is keyed by (api_key_id, request_id), but spend follows the agent across rotations
 * (rotation copies monthly_spend_cents and spend_cycle_start to the successor). So:
 *  - a retried request_id is looked up over the whole rotation chain (rotated_from, recursively),
 *    so that a retry made with the successor key after a rotation does not debit twice;
 *  - the invariant is: the active key's monthly_spend_cents (while its spend_cycle_start is the
 *    current cycle) = the sum of cost_cents of the ledger rows of every key with the same agent_id
 *    whose cycle_start is that cycle (agentLedgerSum in src/db/queries/spend.queries.ts).
 * Only one key of a chain is active at a time, and rotation locks the old row, so debits of one
 * agent are serialised by row locks even across a rotation.
 *
 * Group commit, as the event linker does for events: an instance applies its debits one statement
 * at a time, whatever their keys; debits arriving meanwhile wait for the next statement. That
 * statement takes each key's row lock once, in key order, and decides the key's waiting debits in
 * arrival order, exactly as each would have been decided alone. Across instances the row locks
 * order the statements.
 */

/** The largest single debit: the largest cap a key can have (api_keys_cap_ck). */
export const MAX_COST_CENTS = 100_000_000;

/** The most debits one statement applies; more wait for the next. */
const MAX_BATCH = 200;

/** A verification with a debit. */
interface DebitRequest {
  tokenHash: string;
  verb: Verb;
  lineId: string | null;
  requestId: string;
  cost: number;
  now: Date;
}

/** What became of it, with the key as the debit left it. */
export type DebitOutcome =
  | { kind: 'invalid'; reason?: RefusalReason }
  | { kind: 'refused'; permissions: Permission; lineId: string | null; key: VerifiedKey }
  | { kind: 'replayed'; key: VerifiedKey }
  | { kind: 'cap_exceeded'; spent: number; cap: number; cycleResetAt: Date; key: VerifiedKey }
  | { kind: 'debited'; key: VerifiedKey };

/** The function's answer for an item whose live key was rotated before its lock: decide it again. */
const RETRY = { kind: 'retry' } as const;

/** How often an item is decided again after such a rotation before it is answered invalid. */
const MAX_RETRIES = 3;

/**
 * The debits of one process: verifies a key for a verb and line and debits cost cents from its
 * current cycle, in one atomic step under the key's row lock. Unknown or revoked answers invalid, a
 * tier or line that does not allow the action answers refused, a request_id already in the chain's
 * ledger debits nothing and answers replayed (with a different cost it is a caller bug: 409), and a
 * cost that would take the cycle's spend over the cap answers cap_exceeded with nothing debited.
 */
export function createDebits(db: Db, metrics?: Metrics) {
  const onBatch = metrics && ((size: number, seconds: number) => metrics.batch('debit', size, seconds));
  const batches = new BatchedLookup<DebitRequest, DebitOutcome | typeof RETRY | Error>((batch) => applyBatch(db, batch), MAX_BATCH, onBatch);
  return {
    async checkAndDebit(request: DebitRequest): Promise<DebitOutcome> {
      for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
        const outcome = await batches.lookup(request);
        if (outcome instanceof Error) throw outcome;
        if (outcome.kind !== 'retry') return outcome;
      }
      // A chain rotated under every attempt (or an overlapping key without a live successor).
      return { kind: 'invalid' };
    },
  };
}

function itemOf(p: DebitRequest, ord: number): DebitItem {
  return {
    ord,
    token_hash: p.tokenHash,
    tiers: tiersAllowing(p.verb),
    // line_id is a uuid, which Postgres writes lowercase.
    line: p.lineId?.toLowerCase() ?? null,
    line_optional: lineOptional(p.verb),
    id: newId(),
    request_id: p.requestId,
    cost: p.cost,
    at: p.now.toISOString(),
    stale_before: new Date(p.now.getTime() - LAST_USED_RESOLUTION_MS).toISOString(),
  };
}

async function applyBatch(db: Db, batch: DebitRequest[]): Promise<(DebitOutcome | typeof RETRY | Error)[]> {
  const rows = await verifyDebitBatch(db, batch.map(itemOf));
  const byOrd = new Map<number, DebitRow>();
  // The key row comes once per key per call, on its first item; later items carry what changed.
  const keys = new Map<string, ApiKeyRow>();
  for (const r of rows) {
    byOrd.set(r.ord, r);
    if (r.key) keys.set(r.key.id, r.key);
  }
  return batch.map((p, ord) => {
    const r = byOrd.get(ord);
    if (!r) return new Error(`keyplane_verify_debit_batch answered no row for item ${ord}`);
    if (r.outcome === 'invalid') return { kind: 'invalid' };
    if (r.outcome === 'retry') return RETRY;
    // The function's own refusals of a key that exists (its copy of key-state.ts's rule).
    if (r.outcome === 'suspended' || r.outcome === 'expired') return { kind: 'invalid', reason: r.outcome };
    const row = keys.get(r.keyId!);
    if (!row) return new Error(`keyplane_verify_debit_batch sent no key for item ${ord}`);
    const after: ApiKeyRow = { ...row, monthlySpendCents: r.spend!, spendCycleStart: r.spendCycleStart, lastUsedAt: r.lastUsedAt };
    return outcomeOf(p, r, after);
  });
}

/** An item that found its key (an invalid one has none): its outcome, with the key as the item left it. */
function outcomeOf(p: DebitRequest, r: DebitRow, row: ApiKeyRow): DebitOutcome | Error {
  const key = verifiedKey(row, p.now);
  switch (r.outcome) {
    case 'refused':
      return { kind: 'refused', permissions: row.permissions, lineId: row.lineId, key };
    case 'replayed':
      if (r.priorCost !== p.cost) {
        return new DomainError('idempotency_key_reused', 'This request_id was already debited with a different cost_cents.', [
          { field: 'request_id', message: 'already used with a different cost_cents' },
        ]);
      }
      return { kind: 'replayed', key };
    case 'cap_exceeded':
      return { kind: 'cap_exceeded', spent: r.spent!, cap: r.cap!, cycleResetAt: new Date(r.cycle!.getTime() + SPEND_CYCLE_MS), key };
    case 'debited':
      return { kind: 'debited', key };
    default:
      return new Error(`keyplane_verify_debit_batch answered ${r.outcome} for item ${r.ord}`);
  }
}

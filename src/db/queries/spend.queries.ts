import { sql } from 'drizzle-orm';
import type { ApiKeyRow, Permission } from '../schema.js';
import { preparedQuery, queryRows } from '../statements.js';
import type { Db } from '../types.js';
import { apiKeyRowOf, dateOf, type ApiKeyColumns } from './api-key-rows.js';

/*
 * The statements of data-plane spend: the debit function (src/db/sql/verify_debit_batch.sql) and the
 * ledger's sum, which the invariant of spend is stated in.
 */

/** One item of keyplane_verify_debit_batch, as the function takes it. */
export interface DebitItem {
  ord: number;
  token_hash: string;
  /** The tiers that allow the verb. */
  tiers: readonly Permission[];
  /** The requested line, lowercase (Postgres writes a uuid lowercase); null when none. */
  line: string | null;
  /** Whether a line-scoped key may act naming no line. */
  line_optional: boolean;
  /** The ledger row's id, if the item debits. */
  id: string;
  request_id: string;
  cost: number;
  at: string;
  /** last_used_at older than this is written again. */
  stale_before: string;
}

type DebitOutcomeKind = 'invalid' | 'retry' | 'suspended' | 'expired' | 'refused' | 'replayed' | 'cap_exceeded' | 'debited';

/** One item's answer: its outcome, what it saw, and the columns a debit changes as it left them. */
export interface DebitRow {
  ord: number;
  outcome: DebitOutcomeKind;
  /** replayed: the cost of the earlier debit of its request_id. */
  priorCost: number | null;
  /** cap_exceeded: the cycle's spend, the cap, and the cycle's start. */
  spent: number | null;
  cap: number | null;
  cycle: Date | null;
  keyId: string | null;
  spend: number | null;
  spendCycleStart: Date | null;
  lastUsedAt: Date | null;
  /** The key row, on the key's first item of the call only. */
  key: ApiKeyRow | null;
}

type DebitColumns = {
  o_ord: number;
  o_outcome: DebitOutcomeKind;
  o_prior_cost: number | null;
  o_spent: number | string | null;
  o_cap: number | null;
  o_cycle: Date | string | null;
  o_key_id: string | null;
  o_spend: number | string | null;
  o_spend_cycle: Date | string | null;
  o_last_used: Date | string | null;
} & { [C in keyof ApiKeyColumns]: ApiKeyColumns[C] | null };

// `(b.o_key).*`: the key row's columns, null but on the key's first item. The function is named
// first so that pg_stat_activity, which keeps a statement's first 1 kB, shows it.
const debitBatch = preparedQuery<DebitColumns>(
  sql`select b.o_ord, b.o_outcome, b.o_prior_cost, b.o_spent, b.o_cap, b.o_cycle, b.o_key_id, b.o_spend, b.o_spend_cycle, b.o_last_used, (b.o_key).*
        from keyplane_verify_debit_batch(${sql.placeholder('items')}::jsonb) b`,
);

const numberOrNull = (v: number | string | null) => (v === null ? null : Number(v));
const dateOrNull = (v: Date | string | null) => (v === null ? null : dateOf(v));

function debitRowOf(c: DebitColumns): DebitRow {
  return {
    ord: Number(c.o_ord),
    outcome: c.o_outcome,
    priorCost: numberOrNull(c.o_prior_cost),
    spent: numberOrNull(c.o_spent),
    cap: numberOrNull(c.o_cap),
    cycle: dateOrNull(c.o_cycle),
    keyId: c.o_key_id,
    spend: numberOrNull(c.o_spend),
    spendCycleStart: dateOrNull(c.o_spend_cycle),
    lastUsedAt: dateOrNull(c.o_last_used),
    key: c.id === null ? null : apiKeyRowOf(c as ApiKeyColumns),
  };
}

/** Runs one batch of debits: one statement, committed synchronously, one row per item. */
export async function verifyDebitBatch(db: Db, items: DebitItem[]): Promise<DebitRow[]> {
  return (await debitBatch(db, { items: JSON.stringify(items) })).map(debitRowOf);
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
          AND k.agent_id = ${agentId}::uuid AND l.cycle_start = ${cycleStart.toISOString()}::timestamptz`,
  );
  return Number(rows[0]?.total ?? 0);
}

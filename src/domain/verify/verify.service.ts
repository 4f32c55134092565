import { apiKeysByHashes, liveAgentRows, type AncestorRow } from '../../db/queries/verify.queries.js';
import type { ApiKeyRow, Permission } from '../../db/schema.js';
import type { Db } from '../../db/types.js';
import { BatchedLookup } from '../../db/group-commit.js';
import { parseToken } from '../auth/credentials.js';
import { lastUsedIsFresh, type LastUsed } from '../auth/last-used.js';
import { defaultMessage, type ErrorCode, type ErrorDetail } from '../errors.js';
import { createDebits, type DebitOutcome } from './debit.js';
import { currentSpend, cycleStartFor, SPEND_CYCLE_MS } from '../keys/key-object.js';
import { accepts, keyState, refusalReason, type RefusalReason } from '../keys/key-state.js';
import { allows, fitsCap, inScope, type Verb } from './rules.js';
import { verifiedKey, type VerifiedKey } from './verified-key.js';
import type { Metrics } from '../metrics/metrics.js';

/*
 * Key verification for the data plane: is this API key allowed to do this, on this line,
 * at this cost, right now? Answered from the database row on every call: there is no cache, so a
 * revoked or rotated-away key fails on the very next verification on every instance.
 *
 * Round trips: the token's shape, checksum and SHA-256 are computed before any database work. A
 * verify without cost is one SELECT by token_hash (unique index), plus an UPDATE of last_used_at at
 * most once per second per key. A verify with cost is one statement that finds the key by
 * token_hash, checks it and debits it under its row lock (debit.ts); no explicit transaction, so no
 * BEGIN/COMMIT round trips. The reads of concurrent verifies share one SELECT (db/group-commit.ts),
 * started after each of them arrived, as their debits share one statement.
 */

interface VerifyInput {
  key: string;
  verb: Verb;
  lineId?: string | null;
  /** Cents to debit from the key's monthly cap, atomically with the check. Requires requestId. */
  costCents?: number;
  /** Idempotency of the debit: a request_id already debited for this agent debits nothing again. */
  requestId?: string;
}

export type VerifyCode = 'valid' | 'invalid_api_key' | 'agent_permission_denied' | 'agent_scope_error' | 'agent_cap_exceeded';

/** The public error envelope of spec §10, ready for the data plane to forward to its own caller. */
interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; details: ErrorDetail[] };
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The key, when the token names a live key (also when that key is refused the action). */
  key?: VerifiedKey;
  error?: ErrorEnvelope;
  /** Present when cost_cents was given and the answer is valid. */
  debit?: { request_id: string; cost_cents: number; replayed: boolean };
  /**
   * Internal, beside the forwarded envelope (which stays the one invalid_api_key): why a key that
   * exists was refused, when it is suspended, expired or revoked.
   */
  reason?: RefusalReason;
}

type Refusal = { code: 'agent_permission_denied' | 'agent_scope_error'; details: ErrorDetail[] };

/** Whether a live key of this tier and line may perform the verb on the requested line. */
function refusalFor(key: { permissions: Permission; lineId: string | null }, input: Pick<VerifyInput, 'verb' | 'lineId'>): Refusal | null {
  if (!allows(key.permissions, input.verb)) {
    return {
      code: 'agent_permission_denied',
      details: [{ message: `A ${key.permissions} key may not ${input.verb}.`, tier: key.permissions, verb: input.verb }],
    };
  }
  const line = input.lineId ?? null;
  if (!inScope(key.lineId, input.verb, line)) {
    const message = line === null ? `This key is scoped to one line: name it to ${input.verb}.` : 'This key is scoped to another line.';
    return { code: 'agent_scope_error', details: [{ field: 'line_id', message, line_id: line }] };
  }
  return null;
}

function refuse(code: Exclude<VerifyCode, 'valid'>, details: ErrorDetail[], key?: VerifiedKey): VerifyResult {
  const result: VerifyResult = { valid: false, code };
  if (key !== undefined) result.key = key;
  result.error = { error: { code, message: defaultMessage(code), details } };
  return result;
}

/** Unknown, malformed, bad checksum, a service key, revoked, rotated away: all the same answer. */
const invalid = (reason?: RefusalReason): VerifyResult => {
  const result = refuse('invalid_api_key', []);
  if (reason) result.reason = reason;
  return result;
};

function capExceeded(costCents: number, spent: number, cap: number, cycleResetAt: Date, key: VerifiedKey): VerifyResult {
  return refuse(
    'agent_cap_exceeded',
    [
      {
        message: `Spending ${costCents} cents would exceed the monthly cap of ${cap} cents (${spent} spent this cycle).`,
        spent_cents: spent,
        cap_cents: cap,
        cycle_reset_at: cycleResetAt.toISOString(),
      },
    ],
    key,
  );
}

/**
 * Verify's rules for a key row at `now`, before any debit: unknown, then its state (key-state.ts:
 * revoked, suspended, expired), then tier, then line. The refusal verify answers, or null when the
 * key may act. The check route (check.ts) applies the same function to the caller's own key.
 */
export function judgeKey(row: ApiKeyRow | undefined, input: Pick<VerifyInput, 'verb' | 'lineId'>, now: Date, ancestors: AncestorRow[] = []): VerifyResult | null {
  if (!row) return invalid();
  const state = keyState(row, now);
  if (!accepts(state)) return invalid(refusalReason(state));
  // A delegated key works only while every ancestor does: read now, not left to the cascade's writes.
  const stopped = ancestorRefusal(row, ancestors, now);
  if (stopped) return stopped;
  const refusal = refusalFor(row, input);
  if (refusal) return refuse(refusal.code, refusal.details, verifiedKey(row, now));
  return null;
}

/** Invalid when an ancestor of a delegated key has no live key (revoked) or is suspended or expired. */
function ancestorRefusal(row: ApiKeyRow, ancestors: AncestorRow[], now: Date): VerifyResult | null {
  for (const agentId of row.delegationPath) {
    const ancestor = ancestors.find((a) => a.agentId === agentId);
    if (!ancestor) return invalid();
    const state = keyState({ revokedAt: null, suspendedAt: ancestor.suspendedAt, expiresAt: ancestor.expiresAt }, now);
    if (!accepts(state)) return invalid(refusalReason(state));
  }
  return null;
}

/** What else bounds a key's debit: its delegated keys' reservations and its ancestors' caps. */
export interface CostBounds {
  reserved: number;
  ancestors: ApiKeyRow[];
}

const NO_BOUNDS: CostBounds = { reserved: 0, ancestors: [] };

/**
 * The cap rule as a debit of `costCents` at `now` would meet it (fitsCap, the comparisons the debit
 * statement makes under the row locks: the key's cap less what its delegated keys hold back, then
 * each ancestor's cap), without debiting: the refusal, or null when it fits.
 */
export function judgeCost(row: ApiKeyRow, costCents: number, now: Date, bounds: CostBounds = NO_BOUNDS): VerifyResult | null {
  const resetOf = (k: ApiKeyRow) => new Date(cycleStartFor(k.cycleAnchor, now).getTime() + SPEND_CYCLE_MS);
  const spent = currentSpend(row, now) + bounds.reserved;
  if (row.monthlyCapCents !== null && !fitsCap(spent, row.monthlyCapCents, costCents)) {
    return capExceeded(costCents, spent, row.monthlyCapCents, resetOf(row), verifiedKey(row, now));
  }
  for (const ancestor of bounds.ancestors) {
    const used = currentSpend(ancestor, now);
    if (ancestor.monthlyCapCents !== null && !fitsCap(used, ancestor.monthlyCapCents, costCents)) {
      return capExceeded(costCents, used, ancestor.monthlyCapCents, resetOf(ancestor), verifiedKey(row, now));
    }
  }
  return null;
}

/** A debit's outcome as verify answers it. */
function answerOf(outcome: DebitOutcome, input: VerifyInput, requestId: string, costCents: number): VerifyResult {
  switch (outcome.kind) {
    case 'invalid':
      return invalid(outcome.reason);
    case 'refused': {
      // The statement refused by the same rules as refusalFor (rules.ts, sent as data);
      // refusalFor words the refusal from the tier and line it saw.
      const refusal = refusalFor(outcome, input);
      if (!refusal) throw new Error(`the debit refused a ${outcome.permissions} key's ${input.verb} that refusalFor allows`);
      return refuse(refusal.code, refusal.details, outcome.key);
    }
    case 'cap_exceeded':
      return capExceeded(costCents, outcome.spent, outcome.cap, outcome.cycleResetAt, outcome.key);
    case 'replayed':
    case 'debited':
      return { valid: true, code: 'valid', key: outcome.key, debit: { request_id: requestId, cost_cents: costCents, replayed: outcome.kind === 'replayed' } };
  }
}

interface KeyLookup {
  hash: string;
}

/** A token's key, and for a delegated key its ancestors' live rows (read in the same batch). */
interface FoundKey {
  row: ApiKeyRow;
  ancestors: AncestorRow[];
}

/** The rows of a batch of token hashes, and one more read for the ancestors of the delegated ones among them. */
async function keysWithAncestors(db: Db, hashes: string[]): Promise<Map<string, FoundKey>> {
  const rows = await apiKeysByHashes(db, hashes);
  const agents = new Set(rows.flatMap((r) => r.delegationPath));
  const ancestors = agents.size > 0 ? await liveAgentRows(db, [...agents]) : [];
  return new Map(rows.map((row) => [row.tokenHash, { row, ancestors: row.delegationPath.length > 0 ? ancestors : [] }]));
}

/** Data-plane verification (POST /internal/v1/verify and `keyplane verify`). */
/** Told every answer that names a key (the console's activity counts, activity.ts); must not throw or wait. */
export type VerifyObserver = (accountId: string, keyId: string, code: string, now: Date) => void;

export function createVerifyService(db: Db, lastUsed: LastUsed, metrics?: Metrics, observe?: VerifyObserver) {
  const debits = createDebits(db, metrics);
  // Concurrent verifies without cost read their rows in one statement. Each answer is built at its
  // own request's `now` from a row read after the request arrived (db/group-commit.ts).
  const onBatch = metrics && ((size: number, seconds: number) => metrics.batch('verify_key_read', size, seconds));
  const keys = new BatchedLookup<KeyLookup, FoundKey | undefined>(
    async (items) => {
      const byHash = await keysWithAncestors(db, [...new Set(items.map((i) => i.hash))]);
      return items.map((i) => byHash.get(i.hash));
    },
    undefined,
    onBatch,
  );
  const counted = (result: VerifyResult): VerifyResult => {
    metrics?.verifyOutcome(result.code);
    return result;
  };

  async function verifyOnly(tokenHash: string, input: VerifyInput, now: Date): Promise<VerifyResult> {
    const found = await keys.lookup({ hash: tokenHash });
    const row = found?.row;
    const refused = judgeKey(row, input, now, found?.ancestors);
    if (refused || !row) return refused ?? invalid();
    // A refused verify is not a use; a valid one stamps last_used_at (at most once a second) and
    // answers the stamp written, on the row it already has.
    const stamp = lastUsedIsFresh(row.lastUsedAt, now) ? null : await lastUsed.touchApiKey(row.id, row.accountId, now);
    return { valid: true, code: 'valid', key: verifiedKey(stamp ? { ...row, lastUsedAt: stamp } : row, now) };
  }

  async function verifyAndDebit(tokenHash: string, input: VerifyInput, costCents: number, now: Date): Promise<VerifyResult> {
    const requestId = input.requestId!;
    const outcome = await debits.checkAndDebit({ tokenHash, verb: input.verb, lineId: input.lineId ?? null, requestId, cost: costCents, now });
    return answerOf(outcome, input, requestId, costCents);
  }

  return {
    verify(input: VerifyInput, now: Date): Promise<VerifyResult> {
      // Shape, checksum and hash first: a mangled key costs no database work.
      const parsed = parseToken(input.key);
      if (!parsed || parsed.kind !== 'api') return Promise.resolve(counted(invalid()));
      const answer = input.costCents === undefined ? verifyOnly(parsed.tokenHash, input, now) : verifyAndDebit(parsed.tokenHash, input, input.costCents, now);
      if (!metrics && !observe) return answer;
      return answer.then((r) => {
        counted(r);
        if (observe && r.key) observe(r.key.account_id, r.key.id, r.code, now);
        return r;
      });
    },
  };
}

export type VerifyService = ReturnType<typeof createVerifyService>;

import { sql } from 'drizzle-orm';
import type { Db } from '../../db/types.js';
import { BatchedLookup, perDatabase } from '../../db/batched-lookup.js';
import { preparedQuery } from '../../db/statements.js';
import type { Permission } from '../../db/schema.js';
import { parseToken } from '../auth/credentials.js';
import { defaultMessage, type ErrorCode, type ErrorDetail } from '../errors.js';
import { keyObjectJson, type KeyObject } from '../keys/key-object.js';
import { checkAndDebit, LAST_USED_RESOLUTION_MS, touchLastUsed } from './spend.service.js';

/*
 * Key verification for the data plane (issue 9): is this API key allowed to do this, on this line,
 * at this cost, right now? Answered from the database row on every call: there is no cache, so a
 * revoked or rotated-away key fails on the very next verification on every instance.
 *
 * Round trips: the token's shape, checksum and SHA-256 are computed before any database work. A
 * verify without cost is one SELECT by token_hash (unique index) that also builds the answer's key
 * object, plus an UPDATE of last_used_at at most once per second per key. A verify with cost is
 * one statement that finds the key by token_hash, checks it and debits it under its row lock
 * (spend.service.ts); no explicit transaction, so no BEGIN/COMMIT round trips. The reads of
 * concurrent verifies share one SELECT (db/batched-lookup.ts), started after each of them arrived,
 * as their debits share one statement.
 */

export const VERBS = ['read', 'call', 'sms', 'admin'] as const;
export type Verb = (typeof VERBS)[number];

/** Which verbs each permission tier allows. */
export const TIER_VERBS: Record<Permission, readonly Verb[]> = {
  read_only: ['read'],
  call_only: ['read', 'call'],
  sms_only: ['read', 'sms'],
  full: ['read', 'call', 'sms', 'admin'],
  legacy_full: ['read', 'call', 'sms', 'admin'],
};

export const allows = (tier: Permission, verb: Verb): boolean => TIER_VERBS[tier].includes(verb);

/**
 * Line scope. A key with a line_id acts only on that line: a request naming another line is refused,
 * and so is one naming no line unless the verb is `read` (a line-scoped key may read what is its own,
 * such as its audit feed, without naming a line; placing a call or sending an SMS always happens on a
 * line, and `admin` acts account-wide, which is outside any one line). A key without line_id may act
 * on any line.
 */
export function inScope(keyLine: string | null, verb: Verb, requestLine: string | null): boolean {
  if (keyLine === null) return true;
  if (requestLine === null) return verb === 'read';
  return requestLine.toLowerCase() === keyLine.toLowerCase();
}

export interface VerifyInput {
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
export interface ErrorEnvelope {
  error: { code: ErrorCode; message: string; details: ErrorDetail[] };
}

/** The key object of a verify answer: the 14 fields plus account_id. */
export type VerifiedKey = KeyObject & { account_id: string };

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The HTTP status the data plane should answer its caller with; only when not valid. */
  status?: number;
  /**
   * The key as JSON text (a VerifiedKey), when the token names a live key (also when that key is
   * refused the action). Text, not an object: on the hottest path Postgres builds it (see
   * keyFactsByHash), and the route writes it into the answer as is.
   */
  keyJson?: string;
  error?: ErrorEnvelope;
  /** Present when cost_cents was given and the answer is valid. */
  debit?: { request_id: string; cost_cents: number; replayed: boolean };
}

const STATUS: Record<Exclude<VerifyCode, 'valid'>, number> = {
  invalid_api_key: 401,
  agent_permission_denied: 403,
  agent_scope_error: 403,
  agent_cap_exceeded: 402,
};

/** The answer as the wire carries it (VerifyResult's schema order), the key spliced in as is. */
export function verifyResultJson(r: VerifyResult): string {
  let out = `{"valid":${r.valid},"code":"${r.code}"`;
  if (r.status !== undefined) out += `,"status":${r.status}`;
  if (r.keyJson !== undefined) out += `,"key":${r.keyJson}`;
  if (r.error !== undefined) out += `,"error":${JSON.stringify(r.error)}`;
  if (r.debit !== undefined) out += `,"debit":${JSON.stringify(r.debit)}`;
  return `${out}}`;
}

/**
 * The read of a verify without cost: what the decision needs, and the key object as JSON built by
 * Postgres (key-view.ts: keyObjectJson). Against reading the whole row and mapping and serialising
 * it in JavaScript, this took keyplane's CPU per verify from 281 to 202 µs. Concurrent verifies share
 * one statement (BatchedLookup), answered as of the latest `now` among them: the one instant the
 * answer depends on `now` for is whether last_used_at is a second old (and, once in 30 days, which
 * spend cycle it is), and the batch's requests all arrived within one statement's time.
 *
 * `token_hash = any(…)`, not a join with the unnested array: cached while api_keys held a few rows,
 * the join's generic plan hashed the whole table (measured: Hash Join over a full index scan), and
 * a cached plan outlives the table's growth until the next ANALYZE; this form is an index probe per
 * hash on a table of any size.
 */
interface KeyFacts {
  token_hash: string;
  id: string;
  account_id: string;
  permissions: Permission;
  line_id: string | null;
  live: boolean;
  /** last_used_at was set within LAST_USED_RESOLUTION_MS: no write needed. */
  fresh: boolean;
  key: string;
}
const keyFactsByHashes = preparedQuery<KeyFacts>(
  sql`select k.token_hash, k.id, k.account_id, k.permissions, k.line_id, k.revoked_at is null as live,
        coalesce(k.last_used_at > ${sql.placeholder('now')}::timestamptz - ${sql.raw(`interval '${LAST_USED_RESOLUTION_MS} milliseconds'`)}, false) as fresh,
        ${keyObjectJson('k', sql.placeholder('now'), { withAccountId: true })} as key
      from api_keys k where k.token_hash = any(${sql.placeholder('hashes')}::text[])`,
);

interface FactsLookup {
  hash: string;
  now: Date;
}
const factsLoader = perDatabase(
  (db: Db) =>
    new BatchedLookup<FactsLookup, KeyFacts | undefined>(async (items) => {
      const now = items.reduce((latest, i) => (i.now > latest ? i.now : latest), items[0]!.now);
      const rows = await keyFactsByHashes(db, { hashes: [...new Set(items.map((i) => i.hash))], now: now.toISOString() });
      const byHash = new Map(rows.map((r) => [r.token_hash, r]));
      return items.map((i) => byHash.get(i.hash));
    }),
);

type Refusal = { code: 'agent_permission_denied' | 'agent_scope_error'; details: ErrorDetail[] };

/** Whether a live key of this tier and line may perform the verb on the requested line. */
function refusalFor(key: { permissions: Permission; lineId: string | null }, input: VerifyInput): Refusal | null {
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

function refuse(code: Exclude<VerifyCode, 'valid'>, details: ErrorDetail[], keyJson?: string): VerifyResult {
  const result: VerifyResult = {
    valid: false,
    code,
    status: STATUS[code],
    error: { error: { code, message: defaultMessage(code), details } },
  };
  if (keyJson !== undefined) result.keyJson = keyJson;
  return result;
}

/** Unknown, malformed, bad checksum, a service key, revoked, rotated away: all the same answer. */
const invalid = () => refuse('invalid_api_key', []);

export async function verifyKey(db: Db, input: VerifyInput, now: Date): Promise<VerifyResult> {
  // Shape, checksum and hash first: a mangled key costs no database work.
  const parsed = parseToken(input.key);
  if (!parsed || parsed.kind !== 'api') return invalid();
  return input.costCents === undefined ? verifyOnly(db, parsed.tokenHash, input, now) : verifyAndDebit(db, parsed.tokenHash, input, input.costCents, now);
}

async function verifyOnly(db: Db, tokenHash: string, input: VerifyInput, now: Date): Promise<VerifyResult> {
  const facts = await factsLoader(db).lookup({ hash: tokenHash, now });
  if (!facts || !facts.live) return invalid();
  const refusal = refusalFor({ permissions: facts.permissions, lineId: facts.line_id }, input);
  if (refusal) return refuse(refusal.code, refusal.details, facts.key);
  const keyJson = facts.fresh ? facts.key : ((await touchLastUsed(db, facts.id, facts.account_id, now)) ?? facts.key);
  return { valid: true, code: 'valid', keyJson };
}

async function verifyAndDebit(db: Db, tokenHash: string, input: VerifyInput, costCents: number, now: Date): Promise<VerifyResult> {
  const requestId = input.requestId!;
  const outcome = await checkAndDebit(db, {
    tokenHash,
    tiers: TIERS_ALLOWING[input.verb],
    line: input.lineId?.toLowerCase() ?? null,
    lineOptional: inScope(LINE_SCOPED, input.verb, null),
    requestId,
    cost: costCents,
    now,
  });
  switch (outcome.kind) {
    case 'invalid':
      return invalid();
    case 'refused': {
      // The statement refused by the same rules as refusalFor (TIERS_ALLOWING and inScope, sent as
      // data); refusalFor words the refusal from the tier and line it saw.
      const refusal = refusalFor(outcome, input);
      if (!refusal) throw new Error(`the debit refused a ${outcome.permissions} key's ${input.verb} that refusalFor allows`);
      return refuse(refusal.code, refusal.details, outcome.keyJson);
    }
    case 'cap_exceeded':
      return refuse(
        'agent_cap_exceeded',
        [
          {
            message: `Spending ${costCents} cents would exceed the monthly cap of ${outcome.cap} cents (${outcome.spent} spent this cycle).`,
            spent_cents: outcome.spent,
            cap_cents: outcome.cap,
            cycle_reset_at: outcome.cycleResetAt.toISOString(),
          },
        ],
        outcome.keyJson,
      );
    case 'replayed':
    case 'debited':
      return { valid: true, code: 'valid', keyJson: outcome.keyJson, debit: { request_id: requestId, cost_cents: costCents, replayed: outcome.kind === 'replayed' } };
  }
}

/** For each verb, the tiers that allow it: TIER_VERBS turned around, as the debit statement takes it. */
const TIERS_ALLOWING = Object.fromEntries(
  VERBS.map((verb) => [verb, (Object.keys(TIER_VERBS) as Permission[]).filter((tier) => allows(tier, verb))]),
) as Record<Verb, Permission[]>;

/** Any line id: inScope(LINE_SCOPED, verb, null) says whether a line-scoped key may act naming no line. */
const LINE_SCOPED = '00000000-0000-0000-0000-000000000000';

/** Data-plane verification (POST /internal/v1/verify and `keyplane verify`). */
export function createVerifyService(db: Db) {
  return {
    verify: (input: VerifyInput, now: Date): Promise<VerifyResult> => verifyKey(db, input, now),
  };
}

export type VerifyService = ReturnType<typeof createVerifyService>;

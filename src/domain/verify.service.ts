import { eq, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys, type ApiKeyRow, type Permission } from '../db/schema.js';
import { parseToken } from './credentials.js';
import { defaultMessage, type ErrorCode, type ErrorDetail } from './errors.js';
import { toKeyObject, type KeyObject } from './key-view.js';
import { debit, touchLastUsed } from './spend.service.js';

/*
 * Key verification for the data plane (issue 9): is this API key allowed to do this, on this line,
 * at this cost, right now? Answered from the database row on every call: there is no cache, so a
 * revoked or rotated-away key fails on the very next verification on every instance.
 *
 * Round trips: the token's shape, checksum and SHA-256 are computed before any database work. A
 * verify without cost is one SELECT by token_hash (unique index), plus an UPDATE of last_used_at at
 * most once per second per key. A verify with cost is that SELECT plus one atomic debit statement
 * (spend.service.ts); no explicit transaction, so no BEGIN/COMMIT round trips.
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

export type VerifiedKey = KeyObject & { account_id: string };

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The HTTP status the data plane should answer its caller with; only when not valid. */
  status?: number;
  /** The key, when the token names a live key (also when that key is refused the action). */
  key?: VerifiedKey;
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

/**
 * The one read of the hot path, as a named prepared statement: Postgres parses and plans it once per
 * pooled connection, and drizzle builds its SQL once per database handle instead of per request.
 */
function keyByHashQuery(db: Db) {
  return db.select().from(apiKeys).where(eq(apiKeys.tokenHash, sql.placeholder('hash'))).prepare('keyplane_verify_key_by_hash');
}
const preparedByDb = new WeakMap<Db, ReturnType<typeof keyByHashQuery>>();
function keyByHash(db: Db, hash: string): Promise<ApiKeyRow[]> {
  let q = preparedByDb.get(db);
  if (!q) preparedByDb.set(db, (q = keyByHashQuery(db)));
  return q.execute({ hash });
}

const keyView = (row: ApiKeyRow, now: Date): VerifiedKey => ({ ...toKeyObject(row, now), account_id: row.accountId });

function refuse(code: Exclude<VerifyCode, 'valid'>, details: ErrorDetail[], row?: ApiKeyRow, now?: Date): VerifyResult {
  const result: VerifyResult = {
    valid: false,
    code,
    status: STATUS[code],
    error: { error: { code, message: defaultMessage(code), details } },
  };
  if (row && now) result.key = keyView(row, now);
  return result;
}

/** Unknown, malformed, bad checksum, a service key, revoked, rotated away: all the same answer. */
const invalid = () => refuse('invalid_api_key', []);

export async function verifyKey(db: Db, input: VerifyInput, now: Date): Promise<VerifyResult> {
  // Shape, checksum and hash first: a mangled key costs no database work.
  const parsed = parseToken(input.key);
  if (!parsed || parsed.kind !== 'api') return invalid();

  const [row] = await keyByHash(db, parsed.tokenHash);
  if (!row || row.revokedAt) return invalid();

  if (!allows(row.permissions, input.verb)) {
    return refuse(
      'agent_permission_denied',
      [{ message: `A ${row.permissions} key may not ${input.verb}.`, tier: row.permissions, verb: input.verb }],
      row,
      now,
    );
  }

  const line = input.lineId ?? null;
  if (!inScope(row.lineId, input.verb, line)) {
    const message = line === null ? `This key is scoped to one line: name it to ${input.verb}.` : 'This key is scoped to another line.';
    return refuse('agent_scope_error', [{ field: 'line_id', message, line_id: line }], row, now);
  }

  if (input.costCents === undefined) {
    return { valid: true, code: 'valid', key: keyView(await touchLastUsed(db, row, now), now) };
  }

  const requestId = input.requestId!;
  const outcome = await debit(db, row, requestId, input.costCents, now);
  switch (outcome.kind) {
    case 'revoked':
      return invalid();
    case 'cap_exceeded':
      return refuse(
        'agent_cap_exceeded',
        [
          {
            message: `Spending ${input.costCents} cents would exceed the monthly cap of ${outcome.cap} cents (${outcome.spent} spent this cycle).`,
            spent_cents: outcome.spent,
            cap_cents: outcome.cap,
            cycle_reset_at: outcome.cycleResetAt.toISOString(),
          },
        ],
        outcome.row,
        now,
      );
    case 'replayed': {
      const touched = await touchLastUsed(db, outcome.row, now);
      return { valid: true, code: 'valid', key: keyView(touched, now), debit: { request_id: requestId, cost_cents: input.costCents, replayed: true } };
    }
    case 'debited':
      return { valid: true, code: 'valid', key: keyView(outcome.row, now), debit: { request_id: requestId, cost_cents: input.costCents, replayed: false } };
  }
}

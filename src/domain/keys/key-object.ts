import { sql, type Placeholder, type SQL } from 'drizzle-orm';
import { isoText, jsonIso, jsonNumber, jsonText, jsonUuid } from '../../db/json-sql.js';
import type { ApiKeyRow, ServiceKeyRow } from '../../db/schema.js';

/** The 14-field key object of spec §3, in its order; null where empty, timestamps ISO-8601 UTC. */
export interface KeyObject {
  id: string;
  key_prefix: string;
  environment: 'test' | 'live';
  name: string;
  agent_label: string | null;
  line_id: string | null;
  permissions: ApiKeyRow['permissions'];
  monthly_cap_cents: number | null;
  monthly_spend_cents: number;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
  created_by_service_key_id: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toKeyObject(row: ApiKeyRow, now?: Date): KeyObject {
  return {
    id: row.id,
    key_prefix: row.keyPrefix,
    environment: row.environment,
    name: row.name,
    agent_label: row.agentLabel,
    line_id: row.lineId,
    permissions: row.permissions,
    monthly_cap_cents: row.monthlyCapCents,
    monthly_spend_cents: currentSpend(row, now),
    created_at: row.createdAt.toISOString(),
    revoked_at: iso(row.revokedAt),
    last_used_at: iso(row.lastUsedAt),
    rotated_from: row.rotatedFrom,
    created_by_service_key_id: row.createdByServiceKeyId,
  };
}

/**
 * toKeyObject in SQL: the key object of the api_keys row aliased `k`, as JSON text in the same
 * field order, built by Postgres for the list and GET routes (see db/json-sql.ts for why). The
 * spend is currentSpend's rule: cycles of SPEND_CYCLE_MS from cycle_anchor, both instants taken at
 * millisecond precision as the JavaScript rule sees them; the stored spend counts only while its
 * cycle is the current one at `now`. test/integration/json-sql.test.ts checks both against each other.
 * withAccountId appends the account_id field, as verify's key object carries it. `now` may be an
 * instant, a placeholder, or an SQL expression (the debit's per-item instant).
 */
export function keyObjectJson(k: string, now: Date | Placeholder | SQL, opts: { withAccountId?: boolean } = {}): SQL {
  const parts = keyObjectJsonParts(k, opts);
  return sql`(${parts.head} || ${shownSpend(k, now)}::text || ${parts.middle} || ${parts.lastUsed} || ${parts.tail})`;
}

/** The spend keyObjectJson shows at `now`: the stored spend while its cycle is the current one, else 0. */
function shownSpend(k: string, now: Date | Placeholder | SQL): SQL {
  const col = (c: string) => `${k}.${c}`;
  const at = now instanceof Date ? now.toISOString() : now;
  const anchor = sql.raw(`date_trunc('milliseconds', ${col('cycle_anchor')})`);
  const cycleSeconds = SPEND_CYCLE_MS / 1000;
  const cycles = sql`floor(greatest(0, extract(epoch from (${at}::timestamptz - ${anchor}))) / ${sql.raw(String(cycleSeconds))})`;
  const cycleStart = sql`(${anchor} + make_interval(secs => (${cycles} * ${sql.raw(String(cycleSeconds))})::float8))`;
  return sql`(case when ${sql.raw(col('spend_cycle_start'))} is null
      or date_trunc('milliseconds', ${sql.raw(col('spend_cycle_start'))}) = ${cycleStart}
    then ${sql.raw(col('monthly_spend_cents'))} else 0 end)`;
}

/**
 * keyObjectJson in the pieces around its two fields that a debit changes from item to item: the
 * object is head + monthly_spend_cents + middle + last_used_at (a JSON value) + tail. The verify
 * debit (spend.service.ts) has Postgres build head, middle and tail once per key per statement
 * and joins each item's own values in between.
 */
export function keyObjectJsonParts(k: string, opts: { withAccountId?: boolean } = {}): { head: SQL; middle: SQL; lastUsed: SQL; tail: SQL } {
  const col = (c: string) => `${k}.${c}`;
  const raw = (s: string) => sql.raw(s);
  return {
    head: sql`('{"id":"' || ${raw(col('id'))}::text
    || '","key_prefix":' || ${raw(jsonText(col('key_prefix')))}
    || ',"environment":' || ${raw(jsonText(col('environment')))}
    || ',"name":' || ${raw(jsonText(col('name')))}
    || ',"agent_label":' || ${raw(jsonText(col('agent_label')))}
    || ',"line_id":' || ${raw(jsonUuid(col('line_id')))}
    || ',"permissions":' || ${raw(jsonText(col('permissions')))}
    || ',"monthly_cap_cents":' || ${raw(jsonNumber(col('monthly_cap_cents')))}
    || ',"monthly_spend_cents":')`,
    middle: sql`(',"created_at":"' || ${raw(isoText(col('created_at')))}
    || '","revoked_at":' || ${raw(jsonIso(col('revoked_at')))}
    || ',"last_used_at":')`,
    lastUsed: sql.raw(jsonIso(col('last_used_at'))),
    tail: sql`(',"rotated_from":' || ${raw(jsonUuid(col('rotated_from')))}
    || ',"created_by_service_key_id":' || ${raw(jsonUuid(col('created_by_service_key_id')))}
    ${raw(opts.withAccountId ? `|| ',"account_id":"' || ${col('account_id')}::text || '"'` : '')}
    || '}')`,
  };
}

/** Spend cycles are 30 days long, counted from the agent's first key's creation (cycle_anchor). */
export const SPEND_CYCLE_MS = 30 * 24 * 3600 * 1000;

export function cycleStartFor(createdAt: Date, now: Date): Date {
  const elapsed = Math.max(0, now.getTime() - createdAt.getTime());
  return new Date(createdAt.getTime() + Math.floor(elapsed / SPEND_CYCLE_MS) * SPEND_CYCLE_MS);
}

/** The stored spend counts only while its cycle is the current one; a new cycle starts at zero. */
export function currentSpend(row: ApiKeyRow, now: Date = new Date()): number {
  if (!row.spendCycleStart) return row.monthlySpendCents;
  return cycleStartFor(row.cycleAnchor, now).getTime() === row.spendCycleStart.getTime() ? row.monthlySpendCents : 0;
}

export interface ServiceKeyObject {
  id: string;
  account_id: string;
  key_prefix: string;
  environment: 'test' | 'live';
  name: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
}

export function toServiceKeyObject(row: ServiceKeyRow): ServiceKeyObject {
  return {
    id: row.id,
    account_id: row.accountId,
    key_prefix: row.keyPrefix,
    environment: row.environment,
    name: row.name,
    created_at: row.createdAt.toISOString(),
    revoked_at: iso(row.revokedAt),
    last_used_at: iso(row.lastUsedAt),
    rotated_from: row.rotatedFrom,
  };
}

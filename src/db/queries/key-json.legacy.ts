import { sql, type Placeholder, type SQL } from 'drizzle-orm';
import { isoText, jsonIso, jsonNumber, jsonText, jsonUuid } from '../json-sql.js';

/*
 * The key object as JSON built by Postgres, kept only for the verify routes and the debit, which
 * still answer with it; the key routes build the key object in Node (domain/keys/key-object.ts:
 * toKeyObject). To be deleted with verify's move to toKeyObject: it repeats the field order and the
 * spend cycle of key-object.ts, and verify's tests compare its output with the cost path's.
 */

/** domain/keys/key-object.ts: SPEND_CYCLE_MS (db code does not import the domain). */
const SPEND_CYCLE_MS = 30 * 24 * 3600 * 1000;

/**
 * toKeyObject in SQL: the key object of the api_keys row aliased `k`, as JSON text in the same
 * field order. The spend is currentSpend's rule: cycles of SPEND_CYCLE_MS from cycle_anchor, both
 * instants taken at millisecond precision as the JavaScript rule sees them; the stored spend counts
 * only while its cycle is the current one at `now`. withAccountId appends the account_id field, as
 * verify's key object carries it. `now` may be an instant, a placeholder, or an SQL expression (the
 * debit's per-item instant).
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
 * debit has Postgres build head, middle and tail once per key per statement and joins each item's
 * own values in between.
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

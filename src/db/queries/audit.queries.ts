import { and, eq, sql, type SQL } from 'drizzle-orm';
import { asyncCommitCte } from '../durability.js';
import { apiKeys, complianceEvents, spendLedger, type ApiKeyRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db } from '../types.js';
import { eventInsertCte } from './events.queries.js';

/*
 * The statements of the audit feed (GET /v1/audit): which key a caller may read, whether a cursor
 * names an event of the account, and the feed page read together with its audit_read event.
 */

/** The id, rotation line (agent_id) and delegation ancestors of a key of this account and environment, if there is one. */
export async function keyOfAccount(
  db: Db,
  keyId: string,
  scope: { accountId: string; environment: ApiKeyRow['environment'] },
): Promise<{ id: string; agentId: string | null; delegationPath: string[] } | undefined> {
  const [row] = await db
    .select({ id: apiKeys.id, agentId: apiKeys.agentId, delegationPath: apiKeys.delegationPath })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, scope.accountId), eq(apiKeys.environment, scope.environment)));
  return row;
}

/** Whether an event or a ledger row (a billing item) of this account has this id (a feed cursor must name one). */
export async function feedItemExists(db: Db, accountId: string, itemId: string): Promise<boolean> {
  const [event] = await db
    .select({ id: complianceEvents.id })
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.id, itemId)));
  if (event) return true;
  const [debit] = await db
    .select({ id: spendLedger.id })
    .from(spendLedger)
    .where(and(eq(spendLedger.accountId, accountId), eq(spendLedger.id, itemId)));
  return debit !== undefined;
}

/** What the feed statement returns: its record, how many rows it fetched, and the page as JSON. */
export interface FeedRow {
  recorded: number;
  fetched: number;
  /** The page's items, already JSON, comma-separated; null when the page is empty. */
  items: string | null;
  /** The id of the page's last item when the page is full (the next page's cursor). */
  last_id: string | null;
}

/**
 * The values of the feed statement: the feed's own, and the audit_read event's placeholders
 * (events.queries.ts: eventPlaceholders) spread in.
 */
export interface FeedValues extends Record<string, unknown> {
  account_id: string;
  /** The key whose feed is read. */
  target: string;
  limit: number;
  /** Items to fetch: limit + 1, to tell whether another page exists. */
  fetch: number;
  /** Compliance events to fetch: `fetch`, or 0 when the caller filtered them out. */
  fetch_events: number;
  /** Ledger rows (billing items) to fetch: `fetch`, or 0 when the caller filtered them out. */
  fetch_billing: number;
  before: string | null;
  /** The event_types filter as JSON text, recorded in the event; null = no filter. */
  event_types: string | null;
  /** The compliance event types left out, as a JSON array (recorded in the event); null = none. */
  exclude: string | null;
}

/**
 * The feed page and its audit_read event in ONE statement (its own implicit transaction, committed
 * asynchronously; the caller links and flushes before answering): one index-ordered branch per key
 * column of the events, merged (see README "Audit log"), and one per key of the ledger (the
 * billing items), merged with them in the same order; `fetch` items to tell whether another page
 * exists, and the event whose count Postgres fills in. If the event cannot be written the statement
 * fails and no row is returned, so nothing is read without its record.
 *
 * Each event item is the JSON its event's link printed (item_json, keyplane_audit_item in
 * src/db/sql/audit_item.sql); an event not linked yet (its round failed and is retried) or linked
 * before item_json existed is printed here by the same function. A billing item is printed from its
 * ledger row by keyplane_billing_item (src/db/sql/billing_item.sql).
 */
function feedStatement(withCursor: boolean, withoutReads: boolean) {
  const p = (name: string) => sql.placeholder(name);
  // The cursor names an event or a ledger row of the account, each found by its primary key, once
  // (the `cursor` CTE) for the five walks' bounds.
  const cursorCte = withCursor
    ? sql`cursor as (
          select c.created_at, c.id from compliance_events c where c.account_id = ${p('account_id')} and c.id = ${p('before')}::uuid
          union all
          select c.created_at, c.id from spend_ledger c where c.account_id = ${p('account_id')} and c.id = ${p('before')}::uuid),`
    : sql``;
  const cursorOf = (alias: string) =>
    withCursor ? sql`and (${sql.raw(alias)}.created_at, ${sql.raw(alias)}.id) < (select c.created_at, c.id from cursor c)` : sql``;
  // One walk of each key column's index, newest first, reading each event's item as it goes; the
  // three walks are merged in that same order (Merge Append) and an event named twice (as actor and
  // subject, as every audit_read of one's own feed is) is kept once (DISTINCT ON, adjacent in the
  // merge). No sort of events and no second visit to any row: the previous form took the ids from
  // the indexes, deduplicated them by hashing, sorted them, then fetched each item by primary key
  // (EXPLAIN ANALYZE on the bench's feed: 1.03 ms and 575 buffers, against 0.19 ms and 256).
  // The price: an event without item_json (not linked yet, or linked before item_json existed) is
  // printed in every walk that reaches it, up to three walks of `fetch` rows, before the merge keeps
  // a page of them. Such events are the few in flight at the head of a feed, or an old history;
  // fetching them again by id after the merge would put the probe back on every page.
  // `exclude` (a JSON array of event types, or null) is a filter of each walk: the walk goes on
  // until it has `fetch_events` rows that pass it. A feed that excludes the reads (READ_EVENT_TYPES)
  // names them as the *_noreads_idx partial indexes do, so it walks those: otherwise a polling
  // agent's walk would step over every read it ever made to find a page of other events.
  const noReads = withoutReads ? sql`and e.event_type not in ('audit_read', 'agent_self_read')` : sql``;
  const branch = (column: string) => sql`(
    select e.created_at, e.id, coalesce(e.item_json, keyplane_audit_item(e)) as json from compliance_events e
     where e.account_id = ${p('account_id')} and e.${sql.raw(column)} = ${p('target')}::uuid ${cursorOf('e')} ${noReads}
       and not coalesce(${p('exclude')}::jsonb ? e.event_type, false)
     order by e.created_at desc, e.id desc
     limit ${p('fetch_events')})`;
  // A key's debits, newest first, by spend_ledger_feed_idx: those made with the key itself, and
  // for the newest key of a chain (no successor) those of its predecessor, whose debits it inherits
  // the spend of. `cost_cents >= 0` is every row (spend_ledger_cost_ck) and names the partial index.
  const ledger = (key: SQL) => sql`(
    select l.created_at, l.id, keyplane_billing_item(l) as json from spend_ledger l
     where l.account_id = ${p('account_id')} and l.api_key_id = ${key} and l.cost_cents >= 0 ${cursorOf('l')}
     order by l.created_at desc, l.id desc
     limit ${p('fetch_billing')})`;
  // By primary key alone: the target is already a key of the account (audit.service.ts: resolveTarget).
  const predecessor = sql`(select k.rotated_from from api_keys k
     where k.id = ${p('target')}::uuid and not exists (select 1 from api_keys s where s.rotated_from = k.id))`;
  const event = eventInsertCte('ev', {
    json: sql`jsonb_build_object(
        'count', counts.n, 'api_key_id', ${p('target')}::text, 'limit', ${p('limit')}::int,
        'event_types', ${p('event_types')}::jsonb, 'exclude', ${p('exclude')}::jsonb, 'before', ${p('before')}::text,
        'ip', ${p('ev_ip')}::text, 'user_agent', ${p('ev_user_agent')}::text)::text`,
    from: sql`counts`,
  });
  return preparedQuery<FeedRow>(
    sql`with ${cursorCte} page as (
          select m.id, m.json, row_number() over (order by m.created_at desc, m.id desc) as rn
            from (select v.created_at, v.id, v.json
                    from ((select distinct on (u.created_at, u.id) u.created_at, u.id, u.json
                             from (${branch('actor_key_id')} union all ${branch('subject_key_id')} union all ${branch('related_key_id')}) u
                            order by u.created_at desc, u.id desc
                            limit ${p('fetch_events')})
                          union all ${ledger(sql`${p('target')}::uuid`)}
                          union all ${ledger(predecessor)}) v
                   order by v.created_at desc, v.id desc
                   limit ${p('fetch')}) m),
        counts as (select least(count(*), ${p('limit')}::int)::int as n from page),
        ${event},
        ${asyncCommitCte}
        select (select count(*) from ev)::int as recorded,
               (select count(*) from page)::int as fetched,
               (select string_agg(p.json, ',' order by p.rn) from page p where p.rn <= ${p('limit')}::int) as items,
               (select p.id from page p where p.rn = ${p('limit')}::int) as last_id
          from async_commit`,
  );
}
/** The events a feed read records: a feed that excludes all of them walks the indexes without them. */
const READ_EVENT_TYPES = ['audit_read', 'agent_self_read'] as const;

// Built once (statements.ts: preparedQuery): one text per shape, with and without the cursor, with
// and without the reads.
const feeds = [false, true].map((withCursor) => [false, true].map((withoutReads) => feedStatement(withCursor, withoutReads)));

function feedOf(values: FeedValues) {
  const exclude: string[] = values.exclude === null ? [] : JSON.parse(values.exclude);
  return feeds[values.before ? 1 : 0]![READ_EVENT_TYPES.every((type) => exclude.includes(type)) ? 1 : 0]!;
}

/** Reads a feed page and records its audit_read event, in one statement. Undefined if nothing came back. */
export async function readFeedAndRecord(db: Db, values: FeedValues): Promise<FeedRow | undefined> {
  const [row] = await feedOf(values)(db, values);
  return row;
}

/** The plan of the feed statement with these values (EXPLAIN: nothing is read or recorded; with `analyze` it runs). */
export function explainFeed(db: Db, values: FeedValues, analyze = false): Promise<string> {
  return feedOf(values).explain(db, values, analyze);
}

import { and, eq, sql } from 'drizzle-orm';
import { asyncCommitCte } from '../durability.js';
import { apiKeys, complianceEvents, type ApiKeyRow } from '../schema.js';
import { preparedQuery } from '../statements.js';
import type { Db } from '../types.js';
import { eventInsertCte } from './events.queries.js';

/*
 * The statements of the audit feed (GET /v1/audit): which key a caller may read, whether a cursor
 * names an event of the account, and the feed page read together with its audit_read event.
 */

/** The id and rotation line (agent_id) of a key of this account and environment, if there is one. */
export async function keyOfAccount(
  db: Db,
  keyId: string,
  scope: { accountId: string; environment: ApiKeyRow['environment'] },
): Promise<{ id: string; agentId: string | null } | undefined> {
  const [row] = await db
    .select({ id: apiKeys.id, agentId: apiKeys.agentId })
    .from(apiKeys)
    .where(and(eq(apiKeys.id, keyId), eq(apiKeys.accountId, scope.accountId), eq(apiKeys.environment, scope.environment)));
  return row;
}

/** Whether the event exists in this account (a feed cursor must name one). */
export async function eventExists(db: Db, accountId: string, eventId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: complianceEvents.id })
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.id, eventId)));
  return row !== undefined;
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
  /** Rows to fetch: limit + 1 (to tell whether another page exists), or 0 for none. */
  fetch: number;
  before: string | null;
  /** The event_types filter as JSON text, recorded in the event; null = no filter. */
  event_types: string | null;
}

/**
 * The feed page and its audit_read event in ONE statement (its own implicit transaction, committed
 * asynchronously; the caller links and flushes before answering): one index-ordered branch per key
 * column, merged (see README "Audit log"), `fetch` rows to tell whether another page exists, and the
 * event whose count Postgres fills in. If the event cannot be written the statement fails and no
 * row is returned, so nothing is read without its record.
 *
 * Each item is the JSON its event's link printed (item_json, keyplane_audit_item in
 * src/db/sql/audit_item.sql); an event not linked yet (its round failed and is retried) or linked
 * before item_json existed is printed here by the same function.
 */
function feedStatement(withCursor: boolean) {
  const p = (name: string) => sql.placeholder(name);
  const cursor = withCursor
    ? sql`and (e.created_at, e.id) < (select c.created_at, c.id from compliance_events c
                                        where c.account_id = ${p('account_id')} and c.id = ${p('before')}::uuid)`
    : sql``;
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
  const branch = (column: string) => sql`(
    select e.created_at, e.id, coalesce(e.item_json, keyplane_audit_item(e)) as json from compliance_events e
     where e.account_id = ${p('account_id')} and e.${sql.raw(column)} = ${p('target')}::uuid ${cursor}
     order by e.created_at desc, e.id desc
     limit ${p('fetch')})`;
  const event = eventInsertCte('ev', {
    json: sql`jsonb_build_object(
        'count', counts.n, 'api_key_id', ${p('target')}::text, 'limit', ${p('limit')}::int,
        'event_types', ${p('event_types')}::jsonb, 'before', ${p('before')}::text, 'ip', ${p('ev_ip')}::text,
        'user_agent', ${p('ev_user_agent')}::text)::text`,
    from: sql`counts`,
  });
  return preparedQuery<FeedRow>(
    sql`with page as (
          select m.id, m.json, row_number() over (order by m.created_at desc, m.id desc) as rn
            from (select distinct on (u.created_at, u.id) u.created_at, u.id, u.json
                    from (${branch('actor_key_id')} union all ${branch('subject_key_id')} union all ${branch('related_key_id')}) u
                   order by u.created_at desc, u.id desc
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
// Built once (statements.ts: preparedQuery): one text per shape, with and without the cursor.
const feedFromNewest = feedStatement(false);
const feedAfterCursor = feedStatement(true);

const feedOf = (values: FeedValues) => (values.before ? feedAfterCursor : feedFromNewest);

/** Reads a feed page and records its audit_read event, in one statement. Undefined if nothing came back. */
export async function readFeedAndRecord(db: Db, values: FeedValues): Promise<FeedRow | undefined> {
  const [row] = await feedOf(values)(db, values);
  return row;
}

/** The plan of the feed statement with these values (EXPLAIN: nothing is read or recorded). */
export function explainFeed(db: Db, values: FeedValues): Promise<string> {
  return feedOf(values).explain(db, values);
}

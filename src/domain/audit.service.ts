import { and, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { isDriverError } from '../db/driver-error.js';
import { isoText, jsonNumber, jsonText, jsonUuid } from '../db/json-sql.js';
import { preparedQuery } from '../db/raw.js';
import { apiKeys, complianceEvents } from '../db/schema.js';
import type { ApiPrincipal } from './auth.service.js';
import { isUuid } from './child-keys.service.js';
import type { OpContext } from './context.js';
import { DomainError, notFound, validationError } from './errors.js';
import { asyncCommitCte } from '../db/durability.js';
import { linkEvents } from './event-linker.js';
import { eventInsertCte, eventValues } from './events.js';

/*
 * The audit feed of an API key (spec §6). A key's feed is every compliance event of its account in
 * which it is the actor, the subject, or the related key (a rotation's successor). Every read
 * records an audit_read event in the same statement; the events read are returned only after
 * it has committed and been linked and flushed, so nothing is disclosed without its record.
 */

/** The item types of Saperly's feed; this plane produces compliance_event items only. */
export const AUDIT_ITEM_TYPES = ['call', 'sms', 'compliance_event', 'billing_transaction'] as const;
export type AuditItemType = (typeof AUDIT_ITEM_TYPES)[number];

/** Seconds a client should wait when the audit record could not be written. */
const AUDIT_UNAVAILABLE_RETRY_AFTER_S = '2';

const unrecorded = () =>
  new DomainError(
    'service_unavailable',
    'The audit read could not be recorded, so nothing was returned; retry after the time given in Retry-After.',
    [],
    { 'retry-after': AUDIT_UNAVAILABLE_RETRY_AFTER_S },
  );

export interface AuditQuery {
  /** 'self' or a key id. */
  apiKeyId: string;
  limit: number;
  /** null = no filter. */
  eventTypes: AuditItemType[] | null;
  /** Cursor extension: only events older than this event (in feed order). */
  before: string | null;
}

export interface AuditPage {
  /** The page's items, already JSON: the elements of the `events` array, comma-separated. */
  eventsJson: string;
  limit: number;
  apiKeyId: string;
  nextBefore: string | null;
}

/** What the feed statement returns: its record, how many rows it fetched, and the page as JSON. */
interface FeedResult {
  recorded: number;
  fetched: number;
  items: string | null;
  last_id: string | null;
}

/**
 * One feed item as JSON text, built by Postgres from the stored row of `f` (with its ISO time `ts`),
 * field by field in the order of the wire schema (http/audit.schemas.ts: AuditEvent): `data` carries
 * every field the event's hash covers (the event's own facts under `details`), plus seq, prev_hash
 * and hash, so an agent can recompute each link of its slice (domain/events.ts). Why Postgres builds
 * it, and how it stays a whitelist: db/json-sql.ts.
 */
const t = (c: string) => jsonText(`f.${c}`);
const u = (c: string) => jsonUuid(`f.${c}`);
const ITEM_JSON = sql.raw(`'{"type":"compliance_event","id":"' || f.id::text
  || '","created_at":"' || f.ts || '","createdAt":"' || f.ts
  || '","data":{"event_type":' || ${t('event_type')}
  || ',"account_id":"' || f.account_id::text
  || '","environment":' || ${t('environment')}
  || ',"actor_kind":' || ${t('actor_kind')}
  || ',"actor_key_id":' || ${u('actor_key_id')}
  || ',"actor_key_prefix":' || ${t('actor_key_prefix')}
  || ',"subject_key_id":' || ${u('subject_key_id')}
  || ',"related_key_id":' || ${u('related_key_id')}
  || ',"request_id":' || ${t('request_id')}
  || ',"ip":' || ${t('ip')}
  || ',"user_agent":' || ${t('user_agent')}
  || ',"details":' || f.data::text
  || ',"seq":' || ${jsonNumber('f.seq')}
  || ',"prev_hash":' || ${t('prev_hash')}
  || ',"hash":' || ${t('hash')}
  || '}}'`);

/**
 * Which key's feed the caller may read. Not a uuid, another account's or another environment's
 * key: not_found. A line-scoped key may read only its own rotation chain (same agent_id); any
 * other id is agent_scope_error, whether or not it exists, so the 403 is no existence oracle.
 */
async function resolveTarget(tx: Db | Tx, principal: ApiPrincipal, requested: string): Promise<string> {
  if (requested === 'self' || requested === principal.id) return principal.id;
  const lineId = principal.key.lineId;
  const scopeError = () =>
    new DomainError('agent_scope_error', 'A line-scoped key may read only its own audit feed.', [
      { field: 'api_key_id', message: 'the key is scoped to a line', line_id: lineId },
    ]);
  if (!isUuid(requested)) {
    if (lineId) throw scopeError();
    throw notFound();
  }
  const [row] = await tx
    .select({ id: apiKeys.id, agentId: apiKeys.agentId })
    .from(apiKeys)
    .where(
      and(eq(apiKeys.id, requested), eq(apiKeys.accountId, principal.accountId), eq(apiKeys.environment, principal.environment)),
    );
  if (lineId) {
    if (!row || row.agentId !== principal.key.agentId) throw scopeError();
    return row.id;
  }
  if (!row) throw notFound();
  return row.id;
}

/**
 * The feed page and its audit_read event in ONE statement (its own implicit transaction, committed
 * asynchronously; the caller links and flushes before answering): one index-ordered branch per key
 * column, merged (see README "Audit log"), `limit + 1` rows to tell whether another page exists,
 * and the event whose count Postgres fills in. If the event cannot be written the statement fails
 * and no row is returned, so nothing is read without its record.
 */
async function readAndRecord(
  db: Db,
  principal: ApiPrincipal,
  target: string,
  query: AuditQuery,
  ctx: OpContext,
): Promise<FeedResult> {
  const wantsEvents = query.eventTypes === null || query.eventTypes.includes('compliance_event');
  const statement = query.before ? feedAfterCursor : feedFromNewest;
  const [result] = await statement(db, {
    account_id: principal.accountId,
    target,
    limit: query.limit,
    // One row more than asked tells whether another page exists; no rows at all when the caller
    // filtered compliance events out (this plane produces no other item type).
    fetch: wantsEvents ? query.limit + 1 : 0,
    before: query.before,
    event_types: query.eventTypes === null ? null : JSON.stringify(query.eventTypes),
    ...eventValues({
      accountId: principal.accountId,
      eventType: 'audit_read',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: target,
      createdAt: ctx.now,
    }),
  });
  if (result?.recorded !== 1) throw unrecorded();
  return result;
}

/** The feed statement, with or without the `before` cursor; built once (db/raw.ts: preparedQuery). */
function feedStatement(withCursor: boolean) {
  const p = (name: string) => sql.placeholder(name);
  const cursor = withCursor
    ? sql`and (e.created_at, e.id) < (select c.created_at, c.id from compliance_events c
                                        where c.account_id = ${p('account_id')} and c.id = ${p('before')}::uuid)`
    : sql``;
  // Each branch reads only (created_at, id) from its index; the union dedupes those (an event can
  // name the key twice, as actor and subject), and only the page's rows are then fetched whole.
  const branch = (column: string) => sql`(
    select e.created_at, e.id from compliance_events e
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
  return preparedQuery<FeedResult>(
    sql`with page as (
          select * from (${branch('actor_key_id')} union ${branch('subject_key_id')} union ${branch('related_key_id')}) merged
           order by merged.created_at desc, merged.id desc
           limit ${p('fetch')}),
        feed as (
          select e.*, row_number() over (order by e.created_at desc, e.id desc) as rn,
                 ${sql.raw(isoText('e.created_at'))} as ts
            from page join compliance_events e on e.id = page.id),
        counts as (select least(count(*), ${p('limit')}::int)::int as n from feed),
        ${event},
        ${asyncCommitCte}
        select (select count(*) from ev)::int as recorded,
               (select count(*) from feed)::int as fetched,
               (select string_agg(${ITEM_JSON}, ',' order by f.rn) from feed f where f.rn <= ${p('limit')}::int) as items,
               (select f.id from feed f where f.rn = ${p('limit')}::int) as last_id
          from async_commit`,
  );
}
const feedFromNewest = feedStatement(false);
const feedAfterCursor = feedStatement(true);

export async function readAuditFeed(db: Db, principal: ApiPrincipal, query: AuditQuery, ctx: OpContext): Promise<AuditPage> {
  if (query.before !== null && !isUuid(query.before)) {
    throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an event of this feed' }]);
  }
  const target = await resolveTarget(db, principal, query.apiKeyId);
  if (query.before) {
    const [exists] = await db
      .select({ id: complianceEvents.id })
      .from(complianceEvents)
      .where(and(eq(complianceEvents.accountId, principal.accountId), eq(complianceEvents.id, query.before)));
    if (!exists) throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an event of this feed' }]);
  }
  let result: FeedResult;
  try {
    result = await readAndRecord(db, principal, target, query, ctx);
    // Linked and durable before disclosed (domain/event-linker.ts).
    await linkEvents(db, principal.accountId);
  } catch (err) {
    // Nothing is disclosed without its record. A database failure (or the linker's own 503) is
    // this route's 503; anything else is a bug and goes on to the error handler (500, logged).
    if (err instanceof DomainError || isDriverError(err)) throw unrecorded();
    throw err;
  }
  const nextBefore = result.fetched > query.limit ? result.last_id : null;
  return { eventsJson: result.items ?? '', limit: query.limit, apiKeyId: target, nextBefore };
}

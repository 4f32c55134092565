import { and, eq, sql } from 'drizzle-orm';
import type { Db, Tx } from '../db/client.js';
import { queryRows } from '../db/raw.js';
import { apiKeys, complianceEvents } from '../db/schema.js';
import type { ApiPrincipal } from './auth.service.js';
import { isUuid } from './child-keys.service.js';
import type { OpContext } from './context.js';
import { DomainError, notFound, validationError } from './errors.js';
import { withEvents } from './event-linker.js';
import { recordEvent } from './events.js';

/*
 * The audit feed of an API key (spec §6). A key's feed is every compliance event of its account in
 * which it is the actor, the subject, or the related key (a rotation's successor). Every read
 * records an audit_read event in the same transaction; the events read are returned only after
 * that transaction commits, so nothing is disclosed without its record.
 */

/** The item types of Saperly's feed; this plane produces compliance_event items only. */
export const AUDIT_ITEM_TYPES = ['call', 'sms', 'compliance_event', 'billing_transaction'] as const;
export type AuditItemType = (typeof AUDIT_ITEM_TYPES)[number];

/** Seconds a client should wait when the audit record could not be written. */
const AUDIT_UNAVAILABLE_RETRY_AFTER_S = '2';

export interface AuditQuery {
  /** 'self' or a key id. */
  apiKeyId: string;
  limit: number;
  /** null = no filter. */
  eventTypes: AuditItemType[] | null;
  /** Cursor extension: only events older than this event (in feed order). */
  before: string | null;
}

export interface AuditItem {
  type: 'compliance_event';
  id: string;
  created_at: string;
  createdAt: string;
  data: Record<string, unknown>;
}

export interface AuditPage {
  events: AuditItem[];
  limit: number;
  apiKeyId: string;
  nextBefore: string | null;
}

interface EventRow {
  id: string;
  account_id: string;
  seq: string | number;
  prev_hash: string;
  hash: string;
  event_type: string;
  environment: string | null;
  actor_kind: string;
  actor_key_id: string | null;
  actor_key_prefix: string | null;
  subject_key_id: string | null;
  related_key_id: string | null;
  request_id: string | null;
  ip: string | null;
  user_agent: string | null;
  data: unknown;
  created_at: string;
}

/**
 * Which key's feed the caller may read. Not a uuid, another account's or another environment's
 * key: not_found. A line-scoped key may read only its own rotation chain (same agent_id); any
 * other id is agent_scope_error, whether or not it exists, so the 403 is no existence oracle.
 */
async function resolveTarget(tx: Tx, principal: ApiPrincipal, requested: string): Promise<string> {
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

/** The feed query: one index-ordered branch per key column, merged; see README "Audit log". */
async function feedRows(tx: Tx, accountId: string, keyId: string, limit: number, before: string | null): Promise<EventRow[]> {
  const cursor = before
    ? sql`and (e.created_at, e.id) < (select c.created_at, c.id from compliance_events c where c.account_id = ${accountId} and c.id = ${before})`
    : sql``;
  const branch = (column: string) => sql`(
    select e.* from compliance_events e
     where e.account_id = ${accountId} and e.${sql.raw(column)} = ${keyId} ${cursor}
     order by e.created_at desc, e.id desc
     limit ${limit})`;
  return queryRows<EventRow>(
    tx,
    sql`select id, account_id, seq, prev_hash, hash, event_type, environment, actor_kind, actor_key_id,
               actor_key_prefix, subject_key_id, related_key_id, request_id, ip, user_agent, data,
               to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at
          from (${branch('actor_key_id')} union ${branch('subject_key_id')} union ${branch('related_key_id')}) feed
         order by feed.created_at desc, feed.id desc
         limit ${limit}`,
  );
}

/**
 * The wire item. `data` carries every field the event's hash covers (the event's own facts under
 * `details`), plus seq, prev_hash and hash, so that an agent can recompute each link of its slice:
 * hash = sha256(prev_hash | seq | canonical event), see domain/events.ts.
 */
function toItem(r: EventRow): AuditItem {
  return {
    type: 'compliance_event',
    id: r.id,
    created_at: r.created_at,
    createdAt: r.created_at,
    data: {
      event_type: r.event_type,
      account_id: r.account_id,
      environment: r.environment,
      actor_kind: r.actor_kind,
      actor_key_id: r.actor_key_id,
      actor_key_prefix: r.actor_key_prefix,
      subject_key_id: r.subject_key_id,
      related_key_id: r.related_key_id,
      request_id: r.request_id,
      ip: r.ip,
      user_agent: r.user_agent,
      details: r.data,
      seq: Number(r.seq),
      prev_hash: r.prev_hash,
      hash: r.hash,
    },
  };
}

export async function readAuditFeed(db: Db, principal: ApiPrincipal, query: AuditQuery, ctx: OpContext): Promise<AuditPage> {
  if (query.before !== null && !isUuid(query.before)) {
    throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an event of this feed' }]);
  }
  const wantsEvents = query.eventTypes === null || query.eventTypes.includes('compliance_event');
  return withEvents(db, async (tx) => {
    const target = await resolveTarget(tx, principal, query.apiKeyId);
    if (query.before) {
      const [exists] = await tx
        .select({ id: complianceEvents.id })
        .from(complianceEvents)
        .where(and(eq(complianceEvents.accountId, principal.accountId), eq(complianceEvents.id, query.before)));
      if (!exists) throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an event of this feed' }]);
    }
    // One row more than asked tells whether another page exists.
    const rows = wantsEvents ? await feedRows(tx, principal.accountId, target, query.limit + 1, query.before) : [];
    const page = rows.slice(0, query.limit);
    const nextBefore = rows.length > query.limit ? page[page.length - 1]!.id : null;
    try {
      await recordEvent(tx, {
        accountId: principal.accountId,
        eventType: 'audit_read',
        environment: principal.environment,
        actor: ctx.actor,
        meta: ctx.meta,
        subjectKeyId: target,
        data: {
          count: page.length,
          api_key_id: target,
          limit: query.limit,
          event_types: query.eventTypes,
          before: query.before,
          ip: ctx.meta.ip,
          user_agent: ctx.meta.userAgent?.slice(0, 512) ?? null,
        },
        createdAt: ctx.now,
      });
    } catch {
      // Nothing is disclosed without its record: the transaction rolls back and the read fails.
      throw new DomainError(
        'service_unavailable',
        'The audit read could not be recorded, so nothing was returned; retry after the time given in Retry-After.',
        [],
        { 'retry-after': AUDIT_UNAVAILABLE_RETRY_AFTER_S },
      );
    }
    return { events: page.map(toItem), limit: query.limit, apiKeyId: target, nextBefore };
  });
}

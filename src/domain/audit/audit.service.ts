import type { Db } from '../../db/types.js';
import { isDriverError } from '../../db/errors.js';
import { explainFeed, feedItemExists, keyOfAccount, readFeedAndRecord, type FeedRow, type FeedValues } from '../../db/queries/audit.queries.js';
import type { ApiPrincipal } from '../auth/auth.service.js';
import { isUuid } from '../ids.js';
import type { OpContext } from '../context.js';
import { DomainError, notFound, validationError } from '../errors.js';
import { EVENT_TYPES, eventValues, type EventStore } from './events.js';

/*
 * The audit feed of an API key (spec §6). A key's feed is every compliance event of its account in
 * which it is the actor, the subject, or the related key (a rotation's successor). Every read
 * records an audit_read event in the same statement; the events read are returned only after
 * it has committed and been linked and flushed, so nothing is disclosed without its record.
 */

/**
 * The item types of Saperly's feed. This plane produces compliance_event items and, from the spend
 * ledger, billing_transaction items (a key's debits); it accepts the other two so clients keep working.
 */
export const AUDIT_ITEM_TYPES = ['call', 'sms', 'compliance_event', 'billing_transaction'] as const;
export type AuditItemType = (typeof AUDIT_ITEM_TYPES)[number];

/** Seconds a client should wait when the audit record could not be written. */
const AUDIT_UNAVAILABLE_RETRY_AFTER_S = 2;

const unrecorded = () =>
  new DomainError(
    'service_unavailable',
    'The audit read could not be recorded, so nothing was returned; retry after the time given in Retry-After.',
    [],
    { retryAfterSeconds: AUDIT_UNAVAILABLE_RETRY_AFTER_S },
  );

export interface AuditQuery {
  /** 'self' or a key id. */
  apiKeyId: string;
  limit: number;
  /** null = no filter. */
  eventTypes: AuditItemType[] | null;
  /** Cursor extension: only items older than this item (in feed order): an event's or a debit's id. */
  before: string | null;
  /** Filter extension: compliance event types left out (a polling agent's own reads); null = none. */
  exclude: string[] | null;
}

export interface AuditPage {
  /** The page's items, already JSON: the elements of the `events` array, comma-separated. */
  eventsJson: string;
  limit: number;
  apiKeyId: string;
  nextBefore: string | null;
}

/**
 * Which key's feed the caller may read. Not a uuid, another account's or another environment's
 * key: not_found. A confined key (line-scoped, or delegated: never broader than its parent) may read
 * only its own rotation chain (same agent_id) and the keys it delegated, and theirs; any other id is
 * agent_scope_error, whether or not it exists, so the 403 is no existence oracle.
 */
async function resolveTarget(db: Db, principal: ApiPrincipal, requested: string): Promise<string> {
  if (requested === 'self' || requested === principal.id) return principal.id;
  const { lineId, agentId, delegationPath } = principal.key;
  const confined = lineId !== null || delegationPath.length > 0;
  const scopeError = () =>
    lineId
      ? new DomainError('agent_scope_error', 'A line-scoped key may read only its own audit feed.', [
          { field: 'api_key_id', message: 'the key is scoped to a line', line_id: lineId },
        ])
      : new DomainError('agent_scope_error', 'A delegated key may read only its own audit feed and those of the keys it delegated.', [
          // line_id is part of every agent_scope_error's details: null, the key is confined by its delegation.
          { field: 'api_key_id', message: 'the key is delegated', line_id: null },
        ]);
  if (!isUuid(requested)) {
    if (confined) throw scopeError();
    throw notFound();
  }
  const row = await keyOfAccount(db, requested, principal);
  if (confined) {
    const own = row && (row.agentId === agentId || row.delegationPath.includes(agentId));
    if (!row || !own) throw scopeError();
    return row.id;
  }
  if (!row) throw notFound();
  return row.id;
}

/**
 * Reads the page and records its audit_read event in one statement (audit.queries.ts: the event
 * commits with the read, or nothing is read). The caller links and flushes before answering.
 */
async function readAndRecord(db: Db, principal: ApiPrincipal, target: string, query: AuditQuery, ctx: OpContext): Promise<FeedRow> {
  const result = await readFeedAndRecord(db, feedValues(principal, target, query, ctx));
  if (result?.recorded !== 1) throw unrecorded();
  return result;
}

/** The feed statement's values for a read. */
function feedValues(principal: ApiPrincipal, target: string, query: AuditQuery, ctx: OpContext): FeedValues {
  const wants = (type: AuditItemType) => query.eventTypes === null || query.eventTypes.includes(type);
  // One item more than asked tells whether another page exists; none of a type the caller filtered out.
  const fetch = query.limit + 1;
  return {
    account_id: principal.accountId,
    target,
    limit: query.limit,
    fetch,
    fetch_events: wants('compliance_event') ? fetch : 0,
    fetch_billing: wants('billing_transaction') ? fetch : 0,
    before: query.before,
    event_types: query.eventTypes === null ? null : JSON.stringify(query.eventTypes),
    exclude: query.exclude === null ? null : JSON.stringify(query.exclude),
    ...eventValues({
      accountId: principal.accountId,
      eventType: 'audit_read',
      environment: principal.environment,
      actor: ctx.actor,
      meta: ctx.meta,
      subjectKeyId: target,
      createdAt: ctx.now,
    }),
  };
}

/**
 * The plan of the read's statement for the caller's own feed (EXPLAIN; nothing is read or recorded).
 * With `analyze` the statement runs, its audit_read included (bench/feed-cost.ts, on a throwaway database).
 */
export function explainAuditFeed(db: Db, principal: ApiPrincipal, query: AuditQuery, ctx: OpContext, analyze = false): Promise<string> {
  return explainFeed(db, feedValues(principal, principal.id, query, ctx), analyze);
}

/** exclude names compliance event types only; anything else is 422 with the allowed set. */
function checkExclude(exclude: string[] | null): void {
  const unknown = exclude?.filter((name) => !(EVENT_TYPES as readonly string[]).includes(name)) ?? [];
  if (unknown.length === 0) return;
  throw validationError('Invalid querystring.', [
    { field: 'exclude', message: `unknown compliance event types: ${unknown.join(', ').slice(0, 200)}; allowed: ${EVENT_TYPES.join(', ')}`, allowed: [...EVENT_TYPES] },
  ]);
}

async function readAuditFeed(store: EventStore, principal: ApiPrincipal, query: AuditQuery, ctx: OpContext): Promise<AuditPage> {
  const db = store.db;
  checkExclude(query.exclude);
  if (query.before !== null && !isUuid(query.before)) {
    throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an event of this feed' }]);
  }
  const target = await resolveTarget(db, principal, query.apiKeyId);
  if (query.before && !(await feedItemExists(db, principal.accountId, query.before))) {
    throw validationError('Invalid querystring.', [{ field: 'before', message: 'must be the id of an item of this feed' }]);
  }
  let result: FeedRow;
  try {
    result = await readAndRecord(db, principal, target, query, ctx);
    // Linked and durable before disclosed (linker.ts).
    await store.linker.link(principal.accountId);
  } catch (err) {
    // Nothing is disclosed without its record. A database failure (or the linker's own 503) is
    // this route's 503; anything else is a bug and goes on to the error handler (500, logged).
    if (err instanceof DomainError || isDriverError(err)) throw unrecorded();
    throw err;
  }
  const nextBefore = result.fetched > query.limit ? result.last_id : null;
  return { eventsJson: result.items ?? '', limit: query.limit, apiKeyId: target, nextBefore };
}

/** The audit feed (GET /v1/audit). */
export function createAuditService(store: EventStore) {
  return {
    read: (principal: ApiPrincipal, query: AuditQuery, ctx: OpContext): Promise<AuditPage> => readAuditFeed(store, principal, query, ctx),
  };
}

export type AuditService = ReturnType<typeof createAuditService>;

import { getTableColumns, sql } from 'drizzle-orm';
import { bigint, check, index, integer, jsonb, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { consoleSessions, verifyActivity } from './tables/console.js';
import { accounts, serviceKeys } from './tables/accounts.js';
import { apiKeys } from './tables/api-keys.js';
import { ts } from './tables/columns.js';

/*
 * Every table carries account_id and every hot query filters on it, so the tables can later be
 * distributed by account with Citus. No transaction spans two accounts. The accounts and key tables
 * live in tables/; this module is the one schema drizzle-kit and the queries read.
 */

export { accounts, GENESIS_HASH, serviceKeys } from './tables/accounts.js';
export { apiKeys, childKeyCounts, PERMISSIONS, type Permission } from './tables/api-keys.js';

/**
 * Append-only compliance log. Each account's events form a hash chain: hash = sha256(prev_hash |
 * seq | canonical event), see domain/audit/events.ts. Triggers (db/sql/compliance_events.sql) refuse DELETE,
 * TRUNCATE and every UPDATE except the one that fills an unlinked event's link.
 */
export const complianceEvents = pgTable(
  'compliance_events',
  {
    id: uuid('id').primaryKey(),
    accountId: uuid('account_id').notNull(),
    // The event's link in its account's chain: null from the insert (in the transaction of the change
    // it records) until the linker fills all three once (domain/audit/linker.ts).
    seq: bigint('seq', { mode: 'number' }),
    prevHash: text('prev_hash'),
    hash: text('hash'),
    eventType: text('event_type').notNull(),
    environment: text('environment'),
    actorKind: text('actor_kind', { enum: ['service_key', 'api_key', 'portal'] }).notNull(),
    actorKeyId: uuid('actor_key_id'),
    actorKeyPrefix: text('actor_key_prefix'),
    subjectKeyId: uuid('subject_key_id'),
    /** A second subject: the successor of a rotation, so both keys' feeds show it. */
    relatedKeyId: uuid('related_key_id'),
    requestId: text('request_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    data: jsonb('data').notNull(),
    createdAt: ts('created_at').notNull(),
    /**
     * The event's audit feed item as JSON text, written by the link-once trigger when the event is
     * linked (db/sql/audit_item.sql: keyplane_audit_item) and never by keyplane: an event is read in many
     * feed pages, so its item is printed once instead of on every read. Not part of the event (its
     * hash does not cover it, exports leave it out); null until linked, and wherever it was cleared
     * for re-printing, where the feed prints the item from the row.
     */
    itemJson: text('item_json'),
  },
  (t) => [
    uniqueIndex('compliance_events_chain_uq').on(t.accountId, t.seq),
    // The linker's queue: events still waiting for their link, per account, oldest first.
    index('compliance_events_unlinked_idx').on(t.accountId, t.createdAt, t.id).where(sql`${t.seq} is null`),
    check(
      'compliance_events_link_ck',
      sql`(${t.seq} is null and ${t.prevHash} is null and ${t.hash} is null) or (${t.seq} is not null and ${t.prevHash} is not null and ${t.hash} is not null)`,
    ),
    // An item is printed when its event is linked, never before.
    check('compliance_events_item_ck', sql`${t.itemJson} is null or ${t.seq} is not null`),
    // The feed's three paths to a key's events. No account-wide time index: nothing reads one, and
    // every index is written twice per event (insert, then link).
    index('compliance_events_actor_idx').on(t.accountId, t.actorKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index('compliance_events_subject_idx').on(t.accountId, t.subjectKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    index('compliance_events_related_idx').on(t.accountId, t.relatedKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`${t.relatedKeyId} is not null`),
    // The same paths without the reads (READ_EVENT_TYPES in audit.queries.ts), for a feed that
    // excludes them: a polling agent's history is mostly its own reads, which the walk then skips.
    index('compliance_events_actor_noreads_idx').on(t.accountId, t.actorKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`${t.eventType} not in ('audit_read', 'agent_self_read')`),
    index('compliance_events_subject_noreads_idx').on(t.accountId, t.subjectKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`${t.eventType} not in ('audit_read', 'agent_self_read')`),
  ],
);

/**
 * Idempotency records (Brandur Leach's design): one row per (service key, Idempotency-Key), holding
 * the request fingerprint, a lock time while the first request runs, and the redacted response.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    id: uuid('id').primaryKey(),
    accountId: uuid('account_id').notNull(),
    serviceKeyId: uuid('service_key_id').notNull(),
    idempotencyKey: text('idempotency_key').notNull(),
    fingerprint: text('fingerprint').notNull(),
    createdAt: ts('created_at').notNull(),
    lockedAt: ts('locked_at'),
    completedAt: ts('completed_at'),
    responseStatus: integer('response_status'),
    responseBody: jsonb('response_body'),
  },
  (t) => [
    uniqueIndex('idempotency_keys_scope_uq').on(t.serviceKeyId, t.idempotencyKey),
    index('idempotency_keys_created_idx').on(t.createdAt),
  ],
);

/** Append-only spend ledger for data-plane debits; request_id makes a retried debit a no-op. */
export const spendLedger = pgTable(
  'spend_ledger',
  {
    id: uuid('id').primaryKey(),
    accountId: uuid('account_id').notNull(),
    apiKeyId: uuid('api_key_id').notNull().references(() => apiKeys.id),
    requestId: text('request_id').notNull(),
    costCents: integer('cost_cents').notNull(),
    cycleStart: ts('cycle_start').notNull(),
    createdAt: ts('created_at').notNull(),
    /** The cycle's spend and the cap right after this debit (its feed item); null on older rows. */
    spentAfterCents: bigint('spent_after_cents', { mode: 'number' }),
    capCents: integer('cap_cents'),
  },
  (t) => [
    // The debit's probe for an earlier debit of a request_id (keyplane_verify_debit_batch).
    uniqueIndex('spend_ledger_request_uq').on(t.apiKeyId, t.requestId),
    // A cycle's debits in an account (agentLedgerSum). It names no key column: a plan made while the
    // ledger was tiny chose an index with api_key_id in it for the debit's probe (then walked the whole
    // index and filtered request_id) as readily as the one that matches, so only one can serve it.
    index('spend_ledger_account_cycle_idx').on(t.accountId, t.cycleStart),
    // A key's debits in feed order (billing items). Partial on what every row is (the check below), so
    // that only a query naming it can use it: the debit's probe, planned on a tiny ledger, cannot.
    index('spend_ledger_feed_idx').on(t.accountId, t.apiKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`${t.costCents} >= 0`),
    check('spend_ledger_cost_ck', sql`${t.costCents} >= 0`),
  ],
);

export const OPERATOR_SCOPES = ['admin', 'verify', 'metrics'] as const;
export type OperatorScope = (typeof OPERATOR_SCOPES)[number];

/**
 * Named operator tokens for the admin listener (kpo_…), beside the bootstrap KEYPLANE_ADMIN_TOKEN:
 * `admin` may call the whole internal API, `verify` only POST /internal/v1/verify, `metrics` only
 * GET /metrics (a Prometheus scraper). Not account
 * data: the one table without account_id (their events go to the operator account's chain).
 */
export const operatorTokens = pgTable(
  'operator_tokens',
  {
    id: uuid('id').primaryKey(),
    name: text('name').notNull(),
    scope: text('scope', { enum: OPERATOR_SCOPES }).notNull(),
    keyPrefix: text('key_prefix').notNull(),
    /** Hex SHA-256 of the whole plaintext token. */
    tokenHash: text('token_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    revokedAt: ts('revoked_at'),
  },
  (t) => [
    // Every request on the admin listener with a named token probes this index.
    uniqueIndex('operator_tokens_token_hash_uq').on(t.tokenHash),
    // A name names one live token, so that `revoke <name>` is unambiguous; a revoked name may be reused.
    uniqueIndex('operator_tokens_live_name_uq').on(t.name).where(sql`${t.revokedAt} is null`),
    check('operator_tokens_scope_ck', sql`${t.scope} in ('admin','verify','metrics')`),
  ],
);

export { consoleSessions, verifyActivity };

export const schema = { accounts, serviceKeys, apiKeys, complianceEvents, idempotencyKeys, spendLedger, operatorTokens, consoleSessions, verifyActivity };
export type Schema = typeof schema;
export type AccountRow = typeof accounts.$inferSelect;
export type ServiceKeyRow = typeof serviceKeys.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type OperatorTokenRow = typeof operatorTokens.$inferSelect;
/** An event as stored, without its printed feed item (which is not part of the event). */
const { itemJson: _printedItem, ...eventColumnSet } = getTableColumns(complianceEvents);
/** The columns of ComplianceEventRow, for `db.select(eventColumns)`. */
export const eventColumns = eventColumnSet;
export type ComplianceEventRow = Omit<typeof complianceEvents.$inferSelect, 'itemJson'>;

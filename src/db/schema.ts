import { getTableColumns, sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { consoleSessions, verifyActivity } from './console-schema.js';

/*
 * Every table carries account_id and every hot query filters on it, so the tables can later be
 * distributed by account with Citus. No transaction spans two accounts.
 */

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** The genesis link of every account's compliance hash chain. */
export const GENESIS_HASH = '0'.repeat(64);

export const accounts = pgTable('accounts', {
  id: uuid('id').primaryKey(),
  name: text('name').notNull(),
  createdAt: ts('created_at').notNull(),
  // Head of the account's compliance-event hash chain. Updating this row serialises the account's
  // event writers, which is what makes the chain gap-free; see domain/events.ts.
  chainSeq: bigint('chain_seq', { mode: 'number' }).notNull().default(0),
  chainPrev: text('chain_prev').notNull().default(GENESIS_HASH),
  chainHead: text('chain_head').notNull().default(GENESIS_HASH),
  /**
   * What a copied self-rotation pair coming back does (agent_key_reuse_detected): 'revoke_chain'
   * revokes the agent's live key, 'report' only records the event.
   */
  reuseReaction: text('reuse_reaction', { enum: ['revoke_chain', 'report'] }).notNull().default('revoke_chain'),
}, (t) => [check('accounts_reuse_reaction_ck', sql`${t.reuseReaction} in ('revoke_chain','report')`)]);

export const serviceKeys = pgTable(
  'service_keys',
  {
    id: uuid('id').primaryKey(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id),
    environment: text('environment', { enum: ['test', 'live'] }).notNull(),
    name: text('name').notNull(),
    keyPrefix: text('key_prefix').notNull(),
    /** Hex SHA-256 of the whole plaintext token. */
    tokenHash: text('token_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    revokedAt: ts('revoked_at'),
    lastUsedAt: ts('last_used_at'),
    rotatedFrom: uuid('rotated_from'),
    /**
     * The first key of this key's rotation chain (its own id when it was created, not rotated): the
     * owner of the child keys that any key of the chain mints, so that a successor manages the
     * fleet its predecessors minted (api_keys.created_by_service_key_id holds it).
     */
    lineageId: uuid('lineage_id').notNull(),
  },
  (t) => [
    uniqueIndex('service_keys_token_hash_uq').on(t.tokenHash),
    index('service_keys_account_idx').on(t.accountId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    // A service key has at most one successor: a second rotation of the same key cannot commit.
    uniqueIndex('service_keys_rotated_from_uq').on(t.rotatedFrom),
    check('service_keys_env_ck', sql`${t.environment} in ('test','live')`),
  ],
);

export const PERMISSIONS = ['full', 'call_only', 'sms_only', 'read_only', 'legacy_full'] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Portal API keys (legacy_full, no creator) and child keys minted by a service key, in one table. */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey(),
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id),
    environment: text('environment', { enum: ['test', 'live'] }).notNull(),
    name: text('name').notNull(),
    agentLabel: text('agent_label'),
    lineId: uuid('line_id'),
    permissions: text('permissions', { enum: PERMISSIONS }).notNull(),
    monthlyCapCents: integer('monthly_cap_cents'),
    monthlySpendCents: bigint('monthly_spend_cents', { mode: 'number' }).notNull().default(0),
    /** Start of the spend cycle that monthly_spend_cents counts. */
    spendCycleStart: ts('spend_cycle_start'),
    /** Spend cycles are 30-day periods from this instant: the first key of the rotation chain's creation. */
    cycleAnchor: ts('cycle_anchor').notNull(),
    keyPrefix: text('key_prefix').notNull(),
    tokenHash: text('token_hash').notNull(),
    createdAt: ts('created_at').notNull(),
    revokedAt: ts('revoked_at'),
    lastUsedAt: ts('last_used_at'),
    rotatedFrom: uuid('rotated_from'),
    /** The first key of the rotation chain: stable across rotations (the self-rotation agentId). */
    agentId: uuid('agent_id').notNull(),
    createdByServiceKeyId: uuid('created_by_service_key_id').references(() => serviceKeys.id),
    selfRotation: boolean('self_rotation').notNull().default(false),
    /** argon2id hash of the rotation secret; null when self-rotation is not configured. */
    rotationSecretHash: text('rotation_secret_hash'),
    /**
     * On a key made by a self-rotation: the key whose key and secret made it (for a retry's
     * replacement, the same key again). While this key is unused (last_used_at null) it is pending
     * and that old pair may retry the rotation; once used, the old pair coming back is reuse.
     */
    selfRotationBaseId: uuid('self_rotation_base_id'),
    /** After this instant the key is refused (key-state.ts); null: no expiry. A successor inherits it. */
    expiresAt: ts('expires_at'),
    /** While set the key is refused; resume clears it. PATCH and DELETE still work. */
    suspendedAt: ts('suspended_at'),
    /** When the expiry job wrote agent_key_expired: the marker that makes it once; out of child_key_counts. */
    expiryRecordedAt: ts('expiry_recorded_at'),
  },
  (t) => [
    uniqueIndex('api_keys_token_hash_uq').on(t.tokenHash),
    // The expiry job's queue: unrevoked keys with an expiry whose event is not written yet.
    index('api_keys_expiry_due_idx')
      .on(t.expiresAt)
      .where(sql`${t.expiresAt} is not null and ${t.expiryRecordedAt} is null and ${t.revokedAt} is null`),
    // The list route: a service key's active keys, newest first, ties by id.
    index('api_keys_creator_active_idx')
      .on(t.accountId, t.createdByServiceKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.revokedAt} is null`),
    index('api_keys_account_idx').on(t.accountId, t.createdAt.desc().nullsFirst()),
    // Exactly one successor per key: this index is what makes a double rotation impossible.
    uniqueIndex('api_keys_rotated_from_uq').on(t.rotatedFrom),
    // One live key per rotation chain, enforced; and the self-rotation path finds it by agent.
    uniqueIndex('api_keys_agent_live_uq').on(t.agentId).where(sql`${t.revokedAt} is null`),
    check('api_keys_env_ck', sql`${t.environment} in ('test','live')`),
    check('api_keys_permissions_ck', sql`${t.permissions} in ('full','call_only','sms_only','read_only','legacy_full')`),
    check('api_keys_cap_ck', sql`${t.monthlyCapCents} is null or (${t.monthlyCapCents} > 0 and ${t.monthlyCapCents} <= 100000000)`),
  ],
);

/**
 * How many active (unrevoked) child keys each service key has, so that GET /v1/keys reads its
 * `total` from at most COUNT_SHARDS rows instead of counting every key. Kept by statement-level
 * triggers on api_keys (db/sql/child_key_counts.sql), so no write path can forget it. Each backend adds to the
 * shard of its own pid: concurrent mints under one service key do not queue on one counter row.
 */
export const childKeyCounts = pgTable(
  'child_key_counts',
  {
    serviceKeyId: uuid('service_key_id').notNull(),
    shard: integer('shard').notNull(),
    active: bigint('active', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.serviceKeyId, t.shard] })],
);

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

import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { accounts, serviceKeys } from './accounts.js';
import { ts } from './columns.js';

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
    /** Whether this key may mint narrower keys for sub-agents (POST /v1/agents/self/keys). */
    canDelegate: boolean('can_delegate').notNull().default(false),
    /**
     * A delegated key's ancestors by agent id (not key id: rotating a parent keeps its children),
     * root first; empty for a key minted by a service key. Its length is the key's depth.
     */
    delegationPath: uuid('delegation_path').array().notNull().default(sql`'{}'::uuid[]`),
    /** The delegating agent (the last of delegation_path); null for a key minted by a service key. */
    parentAgentId: uuid('parent_agent_id'),
    /** The delegating agent's key at delegation, moved to its successor when that key rotates. */
    parentKeyId: uuid('parent_key_id'),
    /** Set at the first delegation: the debit then reserves the live children's unspent budgets. */
    hasDelegated: boolean('has_delegated').notNull().default(false),
    /** The ancestor agent whose suspension suspended this key (its resume resumes it); null otherwise. */
    suspendedByAgentId: uuid('suspended_by_agent_id'),
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
    // The list's filters (db/queries/key-list.queries.ts): each leads with the service key's keys and
    // its own column, then the list's order, so a filtered page reads only the keys it shows.
    // Labels are compared in the C collation, where a prefix is a contiguous range of the index.
    index('api_keys_creator_label_idx')
      .on(t.accountId, t.createdByServiceKeyId, sql`${t.agentLabel} collate "C"`, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.revokedAt} is null`),
    index('api_keys_creator_line_idx')
      .on(t.accountId, t.createdByServiceKeyId, t.lineId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.revokedAt} is null`),
    index('api_keys_creator_permissions_idx')
      .on(t.accountId, t.createdByServiceKeyId, t.permissions, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.revokedAt} is null`),
    index('api_keys_creator_suspended_idx')
      .on(t.accountId, t.createdByServiceKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.suspendedAt} is not null and ${t.revokedAt} is null`),
    // When a key stops working (its expiry, or its overlap's end): `expiring` is a range of it.
    index('api_keys_creator_ending_idx')
      .on(t.accountId, t.createdByServiceKeyId, sql`least(${t.expiresAt}, ${t.revokedAt})`)
      .where(sql`${t.expiresAt} is not null or ${t.revokedAt} is not null`),
    // `revoked`: the keys with a revocation (an overlap's end included), newest first.
    index('api_keys_creator_revoked_idx')
      .on(t.accountId, t.createdByServiceKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst())
      .where(sql`${t.revokedAt} is not null`),
    // `all`: every key of the service key, newest first.
    index('api_keys_creator_all_idx').on(t.accountId, t.createdByServiceKeyId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
    // Exactly one successor per key: this index is what makes a double rotation impossible.
    uniqueIndex('api_keys_rotated_from_uq').on(t.rotatedFrom),
    // One live key per rotation chain, enforced; and the self-rotation path finds it by agent.
    uniqueIndex('api_keys_agent_live_uq').on(t.agentId).where(sql`${t.revokedAt} is null`),
    // A delegating agent's children (its list, its reserved budgets): live rows only.
    index('api_keys_parent_agent_idx').on(t.parentAgentId, t.createdAt.desc().nullsFirst()).where(sql`${t.parentAgentId} is not null`),
    // A key's subtree (delegation_path @> array[agent]): the cascades of revoke, suspend and resume.
    index('api_keys_delegation_path_idx').using('gin', t.delegationPath).where(sql`cardinality(${t.delegationPath}) > 0`),
    index('api_keys_suspended_by_idx').on(t.suspendedByAgentId).where(sql`${t.suspendedByAgentId} is not null`),
    check('api_keys_depth_ck', sql`cardinality(${t.delegationPath}) <= 3`),
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

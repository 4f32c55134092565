import { sql } from 'drizzle-orm';
import { bigint, check, index, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { ts } from './columns.js';

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

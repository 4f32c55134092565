import { index, integer, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { ts } from './columns.js';

/*
 * The operator console's tables (re-exported by schema.ts, which drizzle-kit reads): its sessions,
 * and the verification counts its charts show. Neither is account data in the ledger's sense.
 */

/**
 * Signed-in operator console sessions (src/domain/console): the cookie holds a random id, this table
 * only its SHA-256, so a database read discloses no usable session. Rows are shared by every
 * instance (processes stay stateless); a session whose last_seen_at is older than the idle timeout
 * is dead and swept. Not account data, like operator_tokens.
 */
export const consoleSessions = pgTable(
  'console_sessions',
  {
    /** Hex SHA-256 of the session id the cookie carries. */
    idHash: text('id_hash').primaryKey(),
    /** The named operator token signed in with; null for the bootstrap token. */
    operatorTokenId: uuid('operator_token_id'),
    operatorName: text('operator_name').notNull(),
    /** The synchronizer token every state-changing form must echo (bound to this session). */
    csrfToken: text('csrf_token').notNull(),
    createdAt: ts('created_at').notNull(),
    lastSeenAt: ts('last_seen_at').notNull(),
  },
  (t) => [index('console_sessions_last_seen_idx').on(t.lastSeenAt)],
);

/**
 * Verification counts per key, minute and outcome (src/domain/verify/activity.ts): telemetry for
 * the console's charts, not the ledger. Each instance adds its in-memory counts every few seconds
 * in one statement; rows older than 30 days are swept.
 */
export const verifyActivity = pgTable(
  'verify_activity',
  {
    accountId: uuid('account_id').notNull(),
    keyId: uuid('key_id').notNull(),
    minute: ts('minute').notNull(),
    outcome: text('outcome').notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.keyId, t.minute, t.outcome] }), index('verify_activity_account_minute_idx').on(t.accountId, t.minute)],
);

export type ConsoleSessionRow = typeof consoleSessions.$inferSelect;

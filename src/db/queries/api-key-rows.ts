import type { ApiKeyRow } from '../schema.js';

/*
 * api_keys rows read by raw statements (db/statements.ts: `select k.*`), mapped to the row type
 * drizzle's own queries return (ApiKeyRow), field by field: the one mapping of the key row for the
 * list, authentication, verification and the debit. Written out rather than looped over drizzle's
 * column mappers, which cost a function call and, for timestamps, a second Date per column.
 */

/** An api_keys row as the drivers return it without drizzle's mapping (`select k.*`). */
export interface ApiKeyColumns {
  id: string;
  account_id: string;
  environment: ApiKeyRow['environment'];
  name: string;
  agent_label: string | null;
  line_id: string | null;
  permissions: ApiKeyRow['permissions'];
  monthly_cap_cents: number | null;
  monthly_spend_cents: number | string;
  spend_cycle_start: Date | string | null;
  cycle_anchor: Date | string;
  key_prefix: string;
  token_hash: string;
  created_at: Date | string;
  revoked_at: Date | string | null;
  last_used_at: Date | string | null;
  rotated_from: string | null;
  agent_id: string;
  created_by_service_key_id: string | null;
  self_rotation: boolean;
  rotation_secret_hash: string | null;
  self_rotation_base_id: string | null;
  expires_at: Date | string | null;
  suspended_at: Date | string | null;
  expiry_recorded_at: Date | string | null;
  can_delegate: boolean;
  /** uuid[]: an array from pg and PGlite, its text form through some drivers' execute. */
  delegation_path: string[] | string;
  parent_agent_id: string | null;
  parent_key_id: string | null;
  has_delegated: boolean;
  suspended_by_agent_id: string | null;
}

/** A uuid[] column as either driver returns it. */
const uuidArray = (v: string[] | string): string[] => (Array.isArray(v) ? v : v === '{}' ? [] : v.slice(1, -1).split(','));

/** Timestamps arrive as Date from both drivers' defaults, as text through drizzle's execute: either. */
export const dateOf = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));
export const dateOrNull = (v: Date | string | null): Date | null => (v === null ? null : dateOf(v));

/** The row as drizzle maps it (ApiKeyRow), from its columns; bigints come as text from pg. */
export function apiKeyRowOf(c: ApiKeyColumns): ApiKeyRow {
  return {
    id: c.id,
    accountId: c.account_id,
    environment: c.environment,
    name: c.name,
    agentLabel: c.agent_label,
    lineId: c.line_id,
    permissions: c.permissions,
    monthlyCapCents: c.monthly_cap_cents,
    monthlySpendCents: Number(c.monthly_spend_cents),
    spendCycleStart: dateOrNull(c.spend_cycle_start),
    cycleAnchor: dateOf(c.cycle_anchor),
    keyPrefix: c.key_prefix,
    tokenHash: c.token_hash,
    createdAt: dateOf(c.created_at),
    revokedAt: dateOrNull(c.revoked_at),
    lastUsedAt: dateOrNull(c.last_used_at),
    rotatedFrom: c.rotated_from,
    agentId: c.agent_id,
    createdByServiceKeyId: c.created_by_service_key_id,
    selfRotation: c.self_rotation,
    rotationSecretHash: c.rotation_secret_hash,
    selfRotationBaseId: c.self_rotation_base_id,
    expiresAt: dateOrNull(c.expires_at),
    suspendedAt: dateOrNull(c.suspended_at),
    expiryRecordedAt: dateOrNull(c.expiry_recorded_at),
    canDelegate: c.can_delegate,
    delegationPath: uuidArray(c.delegation_path),
    parentAgentId: c.parent_agent_id,
    parentKeyId: c.parent_key_id,
    hasDelegated: c.has_delegated,
    suspendedByAgentId: c.suspended_by_agent_id,
  };
}

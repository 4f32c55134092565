import type { ApiKeyRow, ServiceKeyRow } from '../db/schema.js';

/** The 14-field key object of spec §3, in its order; null where empty, timestamps ISO-8601 UTC. */
export interface KeyObject {
  id: string;
  key_prefix: string;
  environment: 'test' | 'live';
  name: string;
  agent_label: string | null;
  line_id: string | null;
  permissions: ApiKeyRow['permissions'];
  monthly_cap_cents: number | null;
  monthly_spend_cents: number;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
  created_by_service_key_id: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function toKeyObject(row: ApiKeyRow, now?: Date): KeyObject {
  return {
    id: row.id,
    key_prefix: row.keyPrefix,
    environment: row.environment,
    name: row.name,
    agent_label: row.agentLabel,
    line_id: row.lineId,
    permissions: row.permissions,
    monthly_cap_cents: row.monthlyCapCents,
    monthly_spend_cents: currentSpend(row, now),
    created_at: row.createdAt.toISOString(),
    revoked_at: iso(row.revokedAt),
    last_used_at: iso(row.lastUsedAt),
    rotated_from: row.rotatedFrom,
    created_by_service_key_id: row.createdByServiceKeyId,
  };
}

/** Spend cycles are 30 days long, counted from the agent's first key's creation (cycle_anchor). */
export const SPEND_CYCLE_MS = 30 * 24 * 3600 * 1000;

export function cycleStartFor(createdAt: Date, now: Date): Date {
  const elapsed = Math.max(0, now.getTime() - createdAt.getTime());
  return new Date(createdAt.getTime() + Math.floor(elapsed / SPEND_CYCLE_MS) * SPEND_CYCLE_MS);
}

/** The stored spend counts only while its cycle is the current one; a new cycle starts at zero. */
export function currentSpend(row: ApiKeyRow, now: Date = new Date()): number {
  if (!row.spendCycleStart) return row.monthlySpendCents;
  return cycleStartFor(row.cycleAnchor, now).getTime() === row.spendCycleStart.getTime() ? row.monthlySpendCents : 0;
}

export interface ServiceKeyObject {
  id: string;
  account_id: string;
  key_prefix: string;
  environment: 'test' | 'live';
  name: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
  rotated_from: string | null;
}

export function toServiceKeyObject(row: ServiceKeyRow): ServiceKeyObject {
  return {
    id: row.id,
    account_id: row.accountId,
    key_prefix: row.keyPrefix,
    environment: row.environment,
    name: row.name,
    created_at: row.createdAt.toISOString(),
    revoked_at: iso(row.revokedAt),
    last_used_at: iso(row.lastUsedAt),
    rotated_from: row.rotatedFrom,
  };
}

import { z } from 'zod';
import { PERMISSIONS, type ApiKeyRow, type ServiceKeyRow } from '../../db/schema.js';

/** The permission tiers a key can hold (legacy_full: portal keys only), for the HTTP layer's schemas. */
export { PERMISSIONS };

/*
 * The key object of spec §3, declared once: its wire schema (the OpenAPI document's `Key`, and the
 * whitelist the compiled serializer writes), the type inferred from it, and the one mapper from a
 * stored row. The 30-day spend cycle is written here too.
 */

export const isoTimestamp = z.string().meta({ format: 'date-time' });

/**
 * Saperly's 14 fields, in wire order, then keyplane's extensions (always present, after them, so a
 * Saperly SDK passes them through or drops them); null where empty, timestamps ISO-8601 UTC.
 */
export const keyObjectSchema = z
  .object({
    id: z.uuid(),
    key_prefix: z.string(),
    environment: z.enum(['test', 'live']),
    name: z.string(),
    agent_label: z.string().nullable(),
    line_id: z.uuid().nullable(),
    permissions: z.enum(PERMISSIONS),
    monthly_cap_cents: z.number().int().nullable(),
    monthly_spend_cents: z.number().int(),
    created_at: isoTimestamp,
    revoked_at: isoTimestamp.nullable(),
    last_used_at: isoTimestamp.nullable(),
    rotated_from: z.uuid().nullable(),
    created_by_service_key_id: z.uuid().nullable(),
    expires_at: isoTimestamp.nullable().meta({ description: 'keyplane extension: when the key stops working (null: never). A rotation\'s successor inherits it.' }),
    suspended_at: isoTimestamp.nullable().meta({ description: 'keyplane extension: when the key was suspended (null: not suspended). A suspended key is refused until resumed.' }),
    can_delegate: z.boolean().meta({ description: 'keyplane extension: whether the key may mint narrower keys for its sub-agents (POST /v1/agents/self/keys).' }),
    parent_key_id: z.uuid().nullable().meta({
      description: "keyplane extension: the key that delegated this one (its agent's current key after a rotation); null for a key minted by a service key.",
    }),
  })
  .meta({ id: 'Key' });

/**
 * The extension fields, with the value every key had before the field existed. A stored response
 * (an Idempotency-Key's replay, kept 12 hours) may predate one: the replay fills it in, since the
 * answer's schema requires every field.
 */
const EXTENSION_DEFAULTS = { expires_at: null, suspended_at: null, can_delegate: false, parent_key_id: null } as const;

/** A stored response's `key` with any extension field it predates filled in. */
export function withStoredKeyDefaults(body: unknown): unknown {
  if (body === null || typeof body !== 'object' || !('key' in body)) return body;
  const key = (body as { key: unknown }).key;
  if (key === null || typeof key !== 'object') return body;
  return { ...body, key: { ...EXTENSION_DEFAULTS, ...key } };
}

/** Mint and rotate add the plaintext on the first response only; a replay omits it. */
export const issuedKeyObjectSchema = keyObjectSchema
  .extend({
    plaintext_key: z.string().optional(),
    rotation_secret: z.string().optional(),
  })
  .meta({ id: 'IssuedKey' });

export type KeyObject = z.infer<typeof keyObjectSchema>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** The key object of a stored row as seen at `now` (which decides the spend shown). */
export function toKeyObject(row: ApiKeyRow, now: Date = new Date()): KeyObject {
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
    expires_at: iso(row.expiresAt),
    suspended_at: iso(row.suspendedAt),
    can_delegate: row.canDelegate,
    parent_key_id: row.parentKeyId,
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

import { z } from 'zod';
import { PERMISSIONS } from '../../domain/keys/key-object.js';
import { LIST_STATUSES } from '../../domain/keys/key-state.js';
import { MAX_TTL_SECONDS, MIN_TTL_SECONDS } from '../../domain/keys/expiry.js';
import { MAX_OVERLAP_SECONDS } from '../../domain/keys/rotation.js';
import { displayName, errorResponses, isoTimestamp, issuedKeyObjectSchema, keyObjectSchema, NO_CREDENTIAL_MESSAGE, noCredential } from './common.schemas.js';

/** Wire schemas of /v1/keys (spec §3–§5). Request objects are strict: unknown fields → 422. */

export const keyName = displayName;
export const agentLabel = z
  .string()
  .regex(/^[a-z0-9][a-z0-9:_.\-]{0,127}$/, 'must match ^[a-z0-9][a-z0-9:_.\\-]{0,127}$')
  .refine(noCredential, NO_CREDENTIAL_MESSAGE);
export const settablePermission = z.enum(['full', 'call_only', 'sms_only', 'read_only'], {
  error: 'must be one of full, call_only, sms_only, read_only (legacy_full cannot be set)',
});
/** A positive number of cents up to $1,000,000, or null for no cap. */
export const monthlyCap = z.number().int().positive().max(100_000_000);

/** keyplane extension: when a key stops working, ISO-8601 with an offset; the domain checks future and ≤ 400 days. */
const expiresAtInput = z.iso.datetime({ offset: true }).meta({ description: 'keyplane extension: ISO-8601, in the future, at most 400 days ahead.' });

const canDelegate = z.boolean().meta({ description: 'keyplane extension: the key may mint narrower keys for its sub-agents (POST /v1/agents/self/keys); default false.' });

export const mintKeyBody = z
  .object({
    name: keyName,
    agent_label: agentLabel.nullish(),
    line_id: z.uuid().nullish(),
    permissions: settablePermission.default('full'),
    monthly_cap_cents: monthlyCap.nullish(),
    environment: z.enum(['test', 'live']).optional(),
    self_rotation: z.boolean().default(false),
    expires_at: expiresAtInput.optional(),
    ttl_seconds: z
      .number()
      .int()
      .min(MIN_TTL_SECONDS)
      .max(MAX_TTL_SECONDS)
      .optional()
      .meta({ description: 'keyplane extension: the key expires this many seconds after the mint (not with expires_at).' }),
    // Optional, not defaulted: an Idempotency-Key's fingerprint covers the validated body, and a
    // default would change every existing mint's fingerprint (a retry across an upgrade: 409).
    can_delegate: canDelegate.optional(),
  })
  .strict()
  .refine((b) => b.expires_at === undefined || b.ttl_seconds === undefined, { message: 'send expires_at or ttl_seconds, not both', path: ['ttl_seconds'] });

export const updateKeyBody = z
  .object({
    name: keyName.optional(),
    agent_label: agentLabel.nullable().optional(),
    line_id: z.uuid().nullable().optional(),
    permissions: settablePermission.optional(),
    monthly_cap_cents: monthlyCap.nullable().optional(),
    self_rotation: z
      .boolean()
      .optional()
      .meta({ description: '`false` turns self-rotation off and clears the rotation secret; `true` is refused (422): `POST /v1/keys/{id}/rotation-secret` turns it on.' }),
    expires_at: expiresAtInput.nullable().optional().meta({ description: 'keyplane extension: a future time (at most 400 days ahead), or null to clear.' }),
    can_delegate: canDelegate.optional(),
  })
  .strict()
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'send at least one field to change' });

/** Rotation-secret takes no body; an empty one (or {}) is what SDKs send with Content-Type: application/json. */
export const rotationSecretBody = z.object({}).strict().nullish();

/** Rotate takes no body, or keyplane's `overlap_seconds` (0, the default, is Saperly's behaviour). */
/** How long a rotated key keeps working beside its successor: 0 to 7 days, never past its own expiry. */
export const overlapSeconds = z
  .number()
  .int()
  .min(0)
  .max(MAX_OVERLAP_SECONDS)
  .optional()
  .meta({ description: 'keyplane extension: the old key keeps working this long beside its successor (at most 7 days, never past its expiry).' });

export const rotateKeyBody = z
  .object({ overlap_seconds: overlapSeconds })
  .strict()
  .nullish();

/** `?rotation_secret=reset`: a self-rotating key's successor gets a new rotation secret (else it keeps the agent's). */
export const rotateKeyQuery = z.object({
  rotation_secret: z
    .enum(['reset'])
    .optional()
    .meta({ description: "`reset`: issue a new rotation secret (answered once, in this 201). Unset: the successor keeps the agent's secret." }),
});

export const keyIdParams = z.object({ id: z.string().max(100) });

/** GET /v1/keys: limit 1–100 (default 50), offset 0–100000 (default 0). */
export const listKeysQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(50),
    offset: z.coerce.number().int().min(0).max(100_000).default(0),
    agent_label: agentLabel.optional().meta({ description: 'keyplane extension: keys with exactly this agent_label.' }),
    agent_label_prefix: agentLabel.optional().meta({ description: 'keyplane extension: keys whose agent_label starts with this.' }),
    line_id: z.uuid().optional().meta({ description: 'keyplane extension: keys scoped to this line.' }),
    permissions: z.enum(PERMISSIONS).optional().meta({ description: 'keyplane extension: keys of this tier.' }),
    status: z
      .enum(LIST_STATUSES)
      .default('active')
      .meta({
        description:
          'keyplane extension. active (the default): neither revoked nor expired (suspended keys included); suspended; expiring: an expiry or an overlap ending within 7 days; revoked; all.',
      }),
  })
  .strict();

export const idempotencyHeaders = z.object({
  'idempotency-key': z.string().optional().meta({ description: 'Required: 1–255 characters, no whitespace; kept 12 hours.' }),
});

const single = z.object({ key: keyObjectSchema });
const issued = z.object({ key: issuedKeyObjectSchema });

/**
 * Error statuses per route: 413 wherever a body can be sent (POST, PATCH, DELETE), 422 wherever a
 * body, query or the id (over 100 characters) can be invalid; the OpenAPI tests check this list.
 */
export const listKeysResponse = { 200: z.object({ keys: z.array(keyObjectSchema), total: z.number().int() }), ...errorResponses([401, 422, 429, 503] as const) };
export const mintKeyResponse = { 201: issued, ...errorResponses([400, 401, 409, 413, 422, 429, 503] as const) };
export const getKeyResponse = { 200: single, ...errorResponses([401, 404, 422, 429, 503] as const) };
export const updateKeyResponse = { 200: single, ...errorResponses([401, 404, 413, 422, 429, 503] as const) };
export const revokeKeyResponse = { 200: single, ...errorResponses([401, 404, 413, 422, 429, 503] as const) };
/** POST /v1/keys/{id}/rotation-secret takes no body, like rotate. */
export const rotationSecretResponse = {
  201: z
    .object({ key: keyObjectSchema, rotation_secret: z.string().optional().meta({ description: 'The new rotation secret: first response only.' }) })
    .meta({ id: 'IssuedRotationSecret' }),
  ...errorResponses([400, 401, 404, 409, 413, 422, 429, 503] as const),
};
/** POST /v1/keys/{id}/suspend: an optional reason, kept in the agent_key_suspended event. */
export const suspendKeyBody = z
  .object({ reason: z.string().min(1).max(500).refine(noCredential, NO_CREDENTIAL_MESSAGE).optional() })
  .strict()
  .nullish();
/** POST /v1/keys/{id}/resume takes no body, like rotate. */
export const resumeKeyBody = z.object({}).strict().nullish();
export const suspensionResponse = { 200: single, ...errorResponses([401, 404, 413, 422, 429, 503] as const) };
/** An agent's spend in its current cycle (keyplane extension); cap and remaining null when uncapped. */
export const agentSpendSchema = z
  .object({
    cycle_start: isoTimestamp,
    cycle_reset_at: isoTimestamp,
    spent_cents: z.number().int(),
    cap_cents: z.number().int().nullable(),
    remaining_cents: z.number().int().nullable(),
  })
  .meta({ id: 'AgentSpend' });
/** GET /v1/keys/{id}/lineage (keyplane extension): the agent's rotation chain, oldest first. */
export const lineageResponse = {
  200: z
    .object({
      agent_id: z.uuid(),
      keys: z.array(
        z.object({
          key: keyObjectSchema,
          rotated_by: z
            .enum(['service_key', 'self', 'portal'])
            .nullable()
            .meta({ description: 'How this key replaced its predecessor: null for the first key of the chain, service_key (its service key rotated it), self (the agent), portal (an operator, from the console).' }),
        }),
      ),
      spend: agentSpendSchema,
    })
    .meta({ id: 'KeyLineage' }),
  ...errorResponses([401, 404, 422, 429, 503] as const),
};
export const rotateKeyResponse = { 201: issued, ...errorResponses([400, 401, 404, 409, 413, 422, 429, 503] as const) };

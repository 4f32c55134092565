import { z } from 'zod';
import { MAX_LEAKED_TOKENS } from '../../domain/operator/operator-revocation.js';
import { errorResponses, isoTimestamp, keyObjectSchema } from './common.schemas.js';
import { insufficientScopeError } from './error.schemas.js';
import { overlapSeconds } from './keys.schemas.js';

/** Wire schemas of the operator's key routes (kill switch and leak intake) on the admin listener. */

const kindSchema = z.enum(['service', 'child', 'portal']);

export const operatorKeySchema = z
  .object({
    id: z.uuid(),
    kind: kindSchema.meta({ description: 'service: a service key; child: minted by a service key; portal: a portal API key (legacy_full).' }),
    account_id: z.uuid(),
    environment: z.enum(['test', 'live']),
    key_prefix: z.string(),
    name: z.string(),
    status: z.enum(['active', 'revoked']),
    permissions: keyObjectSchema.shape.permissions.nullable().meta({ description: 'API keys only; null for a service key.' }),
    agent_label: z.string().nullable(),
    line_id: z.uuid().nullable(),
    monthly_cap_cents: z.number().int().nullable(),
    created_at: isoTimestamp,
    revoked_at: isoTimestamp.nullable(),
    last_used_at: isoTimestamp.nullable(),
    rotated_from: z.uuid().nullable(),
    created_by_service_key_id: z
      .uuid()
      .nullable()
      .meta({ description: "A child key: the first key of the service-key rotation chain that minted it (the key object's field)." }),
    lineage_id: z.uuid().nullable().meta({ description: 'A service key: the first key of its rotation chain.' }),
    managed_by_service_key_id: z
      .uuid()
      .nullable()
      .meta({ description: 'A child key: the live service key of its chain, which manages it through /v1/keys; null when only the operator can.' }),
    expires_at: isoTimestamp.nullable().meta({ description: 'API keys: when the key stops working (null: never, or a service key).' }),
    suspended_at: isoTimestamp.nullable().meta({ description: 'API keys: when the key was suspended (null: not suspended, or a service key).' }),
  })
  .meta({ id: 'OperatorKey', description: 'A key of any kind as the operator sees it; never a secret or a hash.' });

export const accountKeysQuery = z
  .object({
    status: z.enum(['active', 'revoked', 'all']).default('all'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_]{1,20}$/, 'must be the start of a key_prefix (up to 20 characters, e.g. sk_live_1a2b3c4d), never a whole key')
      .optional(),
    kind: kindSchema.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().min(1).max(200).optional(),
  })
  .strict();

export const revokeKeyQuery = z
  .object({
    children: z
      .enum(['keep', 'revoke'])
      .optional()
      .meta({ description: "A service key's child keys: keep them valid, or revoke them in the same transaction. Required when its chain has live children." }),
  })
  .strict();

export const revokeLeakedBody = z
  .object({ tokens: z.array(z.string().min(1).max(512)).min(1).max(MAX_LEAKED_TOKENS) })
  .strict()
  .meta({ id: 'RevokeLeakedRequest' });

const leakResult = z
  .object({
    prefix: z.string().nullable().meta({ description: "The token's key_prefix (never the whole token); null when it does not start like a keyplane key." }),
    found: z.boolean(),
    revoked: z.boolean().meta({ description: 'Revoked by this request; false when not found or revoked already.' }),
    key_id: z.uuid().nullable().meta({ description: "The key's id, or the operator token's." }),
    kind: z.enum([...kindSchema.options, 'operator_token']).nullable(),
    account_id: z.uuid().nullable().meta({ description: 'null for an operator token, which belongs to no account.' }),
  })
  .meta({ id: 'LeakedTokenResult' });

export const accountKeysResponse = {
  200: z.object({ keys: z.array(operatorKeySchema), has_more: z.boolean(), next_cursor: z.string().nullable() }),
  ...errorResponses([401, 404, 422, 503] as const),
  403: insufficientScopeError,
};
export const getKeyResponse = { 200: z.object({ key: operatorKeySchema }), ...errorResponses([401, 404, 422, 503] as const), 403: insufficientScopeError };
export const revokeKeyResponse = {
  200: z.object({
    key: operatorKeySchema,
    revoked: z.boolean().meta({ description: 'Revoked by this request; false when it was revoked already (the answer is then the key as it is).' }),
    children: z
      .object({ revoked: z.number().int(), live: z.number().int() })
      .nullable()
      .meta({ description: "A service key: its chain's child keys revoked by this request, and those still live. Null for an API key." }),
  }),
  ...errorResponses([401, 404, 413, 422, 503] as const),
  403: insufficientScopeError,
};
/** POST /internal/v1/keys/{id}/suspend: an optional reason, kept in the event. */
export const operatorSuspendBody = z.object({ reason: z.string().min(1).max(500).optional() }).strict().nullish();
export const operatorResumeBody = z.object({}).strict().nullish();
export const operatorSuspensionResponse = {
  200: z.object({
    key: operatorKeySchema,
    changed: z.boolean().meta({ description: 'False when the key already was in the state asked for (nothing recorded).' }),
  }),
  ...errorResponses([401, 404, 413, 422, 503] as const),
  403: insufficientScopeError,
};
export const revokeLeakedResponse = {
  200: z.object({ results: z.array(leakResult).meta({ description: 'One result per token, in the order sent.' }) }),
  ...errorResponses([401, 413, 422, 503] as const),
  403: insufficientScopeError,
};

/** POST /internal/v1/keys/{id}/rotate: an optional overlap (0, the default, stops the old key at once). */
export const operatorRotateBody = z
  .object({ overlap_seconds: overlapSeconds })
  .strict()
  .nullish();
export const operatorRotateResponse = {
  201: z.object({
    key: operatorKeySchema.extend({ plaintext_key: z.string().meta({ description: "The successor's token: in this answer only, never stored." }) }),
    rotated: operatorKeySchema.meta({ description: 'The old key: revoked now, or at the end of its overlap (revoked_at ahead).' }),
  }),
  ...errorResponses([401, 404, 409, 413, 422, 503] as const),
  403: insufficientScopeError,
};
/** POST /internal/v1/keys/{id}/revoke-leaked: no body. */
export const revokeAsLeakedBody = z.object({}).strict().nullish();

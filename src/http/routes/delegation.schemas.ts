import { z } from 'zod';
import { MAX_BUDGET_CENTS, MAX_DELEGATION_TTL_SECONDS, MIN_DELEGATION_TTL_SECONDS } from '../../domain/keys/delegation.js';
import { issuedKeyObjectSchema, keyObjectSchema } from '../../domain/keys/key-object.js';
import { isoTimestamp } from '../../domain/keys/key-object.js';
import { errorResponses } from './common.schemas.js';
import { agentLabel, keyName, settablePermission } from './keys.schemas.js';

/** POST /v1/agents/self/keys: a narrower key for a sub-agent, with a budget and a lifetime. */
export const delegateKeyBody = z
  .object({
    name: keyName,
    agent_label: agentLabel.nullish(),
    permissions: settablePermission.meta({ description: 'No broader than the parent\'s: read_only ⊂ call_only, sms_only ⊂ full.' }),
    line_id: z.uuid().nullish().meta({ description: "A line-scoped parent's child gets the parent's line (another line is 403 agent_scope_error)." }),
    budget_cents: z.number().int().min(1).max(MAX_BUDGET_CENTS).meta({ description: "Carved out of the parent's available amount; the child's cap for its whole life." }),
    ttl_seconds: z
      .number()
      .int()
      .min(MIN_DELEGATION_TTL_SECONDS)
      .max(MAX_DELEGATION_TTL_SECONDS)
      .meta({ description: "60 s to 30 days, never past the parent's own expiry." }),
    // Optional rather than defaulted: a named schema's default makes the field required in the generated client's types.
    can_delegate: z.boolean().optional().meta({ description: 'Whether the child may delegate in turn (default false).' }),
  })
  .strict()
  .meta({ id: 'DelegateKeyRequest' });

const delegation = z
  .object({
    parent_key_id: z.uuid(),
    depth: z.number().int().min(1).max(3),
    budget_cents: z.number().int(),
    expires_at: isoTimestamp,
  })
  .meta({ id: 'Delegation' });

export const delegateKeyResponse = {
  201: z.object({ key: issuedKeyObjectSchema, delegation }).meta({ id: 'DelegatedKeyIssued' }),
  ...errorResponses([400, 401, 402, 403, 409, 413, 422, 429, 503] as const),
};

const delegatedKey = keyObjectSchema.extend({ delegation: delegation.extend({ spent_cents: z.number().int() }) }).meta({ id: 'DelegatedKey' });

/** GET /v1/agents/self/keys: direct children by default, the whole subtree with depth=all. */
export const delegatedKeysQuery = z
  .object({
    depth: z.enum(['children', 'all']).default('children'),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    offset: z.coerce.number().int().min(0).max(100_000).default(0),
  })
  .strict();

export const delegatedKeysResponse = {
  200: z.object({ keys: z.array(delegatedKey), total: z.number().int() }).meta({ id: 'DelegatedKeyList' }),
  ...errorResponses([401, 422, 429, 503] as const),
};

export const delegatedKeyParams = z.object({ id: z.string().max(100) });

export const revokeDelegatedKeyResponse = {
  200: z.object({ key: delegatedKey }),
  ...errorResponses([401, 404, 413, 422, 429, 503] as const),
};

import { z } from 'zod';
import { MAX_COST_CENTS } from '../../domain/verify/debit.js';
import { VERBS } from '../../domain/verify/rules.js';
import { errorResponses, keyObjectSchema } from './common.schemas.js';
import { agentSpendSchema } from './keys.schemas.js';
import { verifyCodeSchema } from './verify.schemas.js';

/** GET /v1/agents/self: the caller's key, agent, spend and self-rotation. */
export const agentSelfResponse = {
  200: z
    .object({
      key: keyObjectSchema,
      agent_id: z.uuid(),
      spend: agentSpendSchema,
      self_rotation: z.boolean(),
      delegation: z
        .object({
          can_delegate: z.boolean(),
          depth: z.number().int(),
          parent_key_id: z.uuid().nullable(),
          reserved_cents: z.number().int(),
          available_cents: z.number().int().nullable(),
        })
        .meta({ id: 'AgentDelegation', description: 'keyplane extension: the agent\'s place in its delegation tree; `reserved_cents` is what its live delegated keys hold back of its cap, `available_cents` what it may still delegate or spend (null without a cap).' }),
    })
    .meta({ id: 'AgentSelf' }),
  ...errorResponses([401, 429, 503] as const),
};

/** POST /v1/agents/self/check: verify's request, for the caller's own key, without a debit. */
export const agentCheckBody = z
  .object({
    verb: z.enum(VERBS),
    line_id: z.uuid().nullish(),
    cost_cents: z.number().int().min(1).max(MAX_COST_CENTS).optional(),
  })
  .strict()
  .meta({ id: 'AgentCheckRequest' });

export const agentCheckResponse = {
  200: z
    .object({
      allowed: z.boolean(),
      code: verifyCodeSchema,
      /** The refusal's details as verify's error envelope carries them; empty when allowed. */
      details: z.array(z.object({ field: z.string().optional(), message: z.string() }).catchall(z.unknown())),
    })
    .meta({ id: 'AgentCheckResult' }),
  ...errorResponses([401, 413, 422, 429, 503] as const),
};

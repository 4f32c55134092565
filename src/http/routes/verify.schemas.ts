import { z } from 'zod';
import { MAX_COST_CENTS } from '../../domain/verify/debit.js';
import { VERBS } from '../../domain/verify/rules.js';
import type { VerifyResult } from '../../domain/verify/verify.service.js';
import { statusOf } from '../plugins/error-status.js';
import { errorEnvelopeSchema, errorResponses, keyObjectSchema } from './common.schemas.js';
import { insufficientScopeError } from './error.schemas.js';

/**
 * A data-plane request id: what makes a debit idempotent. Printable ASCII without spaces, like an
 * Idempotency-Key, up to 255 characters.
 */
export const requestIdSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without whitespace');

export const verifyBody = z
  .object({
    // Any string: a malformed key is an answer (valid: false, invalid_api_key), not a 422. The bound
    // only keeps absurd bodies out; no token we issue is longer than 80 characters.
    key: z.string().max(512),
    verb: z.enum(VERBS),
    line_id: z.uuid().nullish(),
    cost_cents: z.number().int().min(1).max(MAX_COST_CENTS).optional(),
    request_id: requestIdSchema.optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    // Without a request id a retried debit could not be told from a new one.
    if (body.cost_cents !== undefined && body.request_id === undefined) {
      ctx.addIssue({ code: 'custom', path: ['request_id'], message: 'request_id is required with cost_cents' });
    }
  });

export const verifyCodeSchema = z.enum(['valid', 'invalid_api_key', 'agent_permission_denied', 'agent_scope_error', 'agent_cap_exceeded']);

export const verifyResultSchema = z
  .object({
    valid: z.boolean(),
    code: verifyCodeSchema,
    status: z.number().int().optional(),
    key: keyObjectSchema.extend({ account_id: z.uuid() }).optional(),
    error: errorEnvelopeSchema.optional(),
    debit: z.object({ request_id: z.string(), cost_cents: z.number().int(), replayed: z.boolean() }).optional(),
    reason: z
      .enum(['suspended', 'expired'])
      .optional()
      .meta({ description: 'Internal: why a key that exists was refused; never forward it (the envelope is the one invalid_api_key).' }),
  })
  .meta({ id: 'VerifyResult' });

/** An answer of POST /internal/v1/verify as the wire carries it. */
export type VerifyAnswer = z.infer<typeof verifyResultSchema>;

/**
 * A verification's result as the route answers it (and `keyplane verify` prints it), fields in the
 * schema's order: a refusal carries the HTTP status the data plane should answer its own caller
 * with, from the one code → status map.
 */
export function verifyAnswer(r: VerifyResult): VerifyAnswer {
  const answer: VerifyAnswer = { valid: r.valid, code: r.code };
  if (r.code !== 'valid') answer.status = statusOf(r.code);
  if (r.key !== undefined) answer.key = r.key;
  if (r.error !== undefined) answer.error = r.error;
  if (r.debit !== undefined) answer.debit = r.debit;
  if (r.reason !== undefined) answer.reason = r.reason;
  return answer;
}

/** 403 insufficient_scope: a `metrics`-scoped operator token (a scraper's) may not verify. */
export const verifyResponses = { 200: verifyResultSchema, ...errorResponses([401, 409, 413, 422, 503] as const), 403: insufficientScopeError };

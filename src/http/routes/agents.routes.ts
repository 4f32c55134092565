import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../../domain/clock.js';
import { DomainError } from '../../domain/errors.js';
import { MAX_SELF_OVERLAP_SECONDS } from '../../domain/keys/rotation.js';
import type { MatchedAgentKey, SelfRotationService } from '../../domain/keys/self-rotation.service.js';
import { bearerToken, requestMeta } from '../plugins/auth.js';
import { errorResponses } from './common.schemas.js';
import { errorBody } from '../plugins/error-handler.js';
import '../plugins/agent-attempts.js';
import '../plugins/limits.js';

export interface AgentsRoutesOptions {
  agents: SelfRotationService;
  clock: Clock;
}

/** Rotation secrets are 46 characters; the bound only keeps argon2 from hashing megabytes. */
const rotationSecretField = z.string().min(1).max(256);
const overlapField = z
  .number()
  .int()
  .min(0)
  .max(MAX_SELF_OVERLAP_SECONDS)
  .meta({ description: 'keyplane extension: the old key keeps working this long beside the new one (0 to 3600; default 0).' });
const selfRotateBody = z.object({ rotationSecret: rotationSecretField, overlapSeconds: overlapField.optional() }).meta({ id: 'SelfRotateRequest' });

const selfRotateResponse = {
  200: z
    .object({
      message: z.string(),
      apiKey: z.string(),
      rotationSecret: z.string(),
      agentId: z.uuid(),
      agentName: z.string(),
    })
    .meta({ id: 'SelfRotateResponse' }),
  ...errorResponses([400, 401, 403, 413, 422, 429, 503] as const),
};

/**
 * POST /v1/agents/self/rotate-key (spec §7). No `auth` in the route config: the service
 * authenticates the bearer key and rotation secret itself (see self-rotation.service.ts). The
 * `agents.self_rotate` policy counts an attempt whose credentials matched against its agent and a
 * failed one against the client address (plugins/agent-attempts.ts).
 */
export async function agentsRoutes(app: FastifyInstance, opts: AgentsRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post(
    '/agents/self/rotate-key',
    {
      config: { limit: 'agents.self_rotate' },
      // The spec answers a missing rotationSecret with 400, not the 422 of other bad bodies.
      attachValidation: true,
      schema: { body: selfRotateBody, response: selfRotateResponse },
    },
    async (request, reply) => {
      // Each field on its own: a bad overlapSeconds is 422, only a missing secret the spec's 400.
      const body = (request.body ?? {}) as { rotationSecret?: unknown; overlapSeconds?: unknown };
      const secret = rotationSecretField.safeParse(body.rotationSecret);
      let key: MatchedAgentKey;
      try {
        key = await matchCredentials(request.headers.authorization, opts.agents, secret.success ? secret.data : undefined);
      } catch (err) {
        // A failed attempt counts against the address; a database outage (503) is no attempt.
        if (err === MISSING_SECRET || (err instanceof DomainError && FAILURES.has(err.code))) await app.agentAttempts.countFailure(request, reply);
        if (err !== MISSING_SECRET) throw err;
        return reply.code(400).send(
          errorBody('validation_error', 'rotationSecret is required.', [
            { field: 'rotationSecret', message: 'required: the rotation secret issued with this key' },
          ]),
        );
      }
      await app.agentAttempts.countAgent(request, reply, key.agentId);
      const overlap = overlapField.optional().safeParse(body.overlapSeconds);
      if (!overlap.success) {
        return reply.code(422).send(errorBody('validation_error', 'overlapSeconds must be an integer from 0 to 3600.', [{ field: 'overlapSeconds', message: 'an integer from 0 to 3600' }]));
      }
      const result = await opts.agents.rotate(key, requestMeta(request), opts.clock.now(), overlap.data ?? 0);
      return {
        message: overlap.data
          ? `Key rotated. Store the new API key and rotation secret now: they are shown once. The old key keeps working for ${overlap.data} seconds.`
          : 'Key rotated. Store the new API key and rotation secret now: they are shown once, and the old ones no longer work.',
        apiKey: result.apiKey,
        rotationSecret: result.rotationSecret,
        agentId: result.agentId,
        agentName: result.agentName,
      };
    },
  );
}

/** The answers of a failed attempt: no, malformed or unknown key, wrong secret, no secret configured. */
const FAILURES = new Set(['unauthorized', 'invalid_api_key', 'rotation_not_configured']);

/** Thrown by matchCredentials for a body without a usable rotationSecret (answered 400). */
const MISSING_SECRET = new Error('rotationSecret missing');

/** The bearer key and rotation secret, matched; each way of failing throws its contract error. */
async function matchCredentials(authorization: string | undefined, agents: SelfRotationService, rotationSecret?: string): Promise<MatchedAgentKey> {
  const token = bearerToken(authorization);
  if (token === undefined) throw new DomainError('unauthorized');
  if (token === null) throw new DomainError('invalid_api_key');
  if (rotationSecret === undefined) throw MISSING_SECRET;
  return agents.match(token, rotationSecret);
}

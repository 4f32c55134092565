import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../../domain/clock.js';
import type { DelegationService } from '../../domain/keys/delegation.service.js';
import { apiPrincipal, opContext } from '../plugins/auth.js';
import { idempotencyOf, sendOutcome } from '../plugins/idempotency-header.js';
import {
  delegatedKeyParams,
  delegatedKeysQuery,
  delegatedKeysResponse,
  delegateKeyBody,
  delegateKeyResponse,
  revokeDelegatedKeyResponse,
} from './delegation.schemas.js';
import { idempotencyHeaders } from './keys.schemas.js';
import '../plugins/limits.js';

export interface DelegationRoutesOptions {
  delegation: DelegationService;
  clock: Clock;
}

/** /v1/agents/self/keys: the keys an agent delegates to its sub-agents, with its own API key. */
export async function delegationRoutes(app: FastifyInstance, opts: DelegationRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { delegation, clock } = opts;
  r.post(
    '/agents/self/keys',
    { config: { auth: 'api', limit: 'agents.delegate' }, schema: { body: delegateKeyBody, headers: idempotencyHeaders, response: delegateKeyResponse } },
    async (request, reply) => {
      const b = request.body;
      const input = {
        name: b.name,
        agentLabel: b.agent_label ?? null,
        permissions: b.permissions,
        lineId: typeof b.line_id === 'string' ? b.line_id.toLowerCase() : b.line_id,
        budgetCents: b.budget_cents,
        ttlSeconds: b.ttl_seconds,
        canDelegate: b.can_delegate ?? false,
      };
      return sendOutcome(reply, await delegation.delegate(apiPrincipal(request), input, idempotencyOf(request), opContext(request, clock)));
    },
  );
  r.get(
    '/agents/self/keys',
    { config: { auth: 'api', limit: 'agents.delegated_keys' }, schema: { querystring: delegatedKeysQuery, response: delegatedKeysResponse } },
    async (request) => {
      const q = request.query;
      return delegation.list(apiPrincipal(request), { subtree: q.depth === 'all', limit: q.limit, offset: q.offset }, opContext(request, clock));
    },
  );
  r.delete(
    '/agents/self/keys/:id',
    { config: { auth: 'api', limit: 'agents.delegated_keys' }, schema: { params: delegatedKeyParams, response: revokeDelegatedKeyResponse } },
    async (request) => ({ key: await delegation.revoke(apiPrincipal(request), request.params.id, opContext(request, clock)) }),
  );
}

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../../domain/clock.js';
import type { AgentSelfService } from '../../domain/keys/agent-self.service.js';
import { apiPrincipal, opContext } from '../plugins/auth.js';
import { agentCheckBody, agentCheckResponse, agentSelfResponse } from './agent-self.schemas.js';
import '../plugins/limits.js';

export interface AgentSelfRoutesOptions {
  agentSelf: AgentSelfService;
  clock: Clock;
}

/**
 * GET /v1/agents/self and POST /v1/agents/self/check with the agent's own API key. The
 * read records agent_self_read; the check is `passive`: it writes nothing, not even last_used_at.
 */
export async function agentSelfRoutes(app: FastifyInstance, opts: AgentSelfRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/agents/self', { config: { auth: 'api', limit: 'agents.self_read' }, schema: { response: agentSelfResponse } }, async (request) =>
    opts.agentSelf.read(apiPrincipal(request), opContext(request, opts.clock)),
  );
  r.post(
    '/agents/self/check',
    { config: { auth: 'api', passive: true, limit: 'agents.self_check' }, schema: { body: agentCheckBody, response: agentCheckResponse } },
    async (request) => {
      const b = request.body;
      return opts.agentSelf.check(apiPrincipal(request), { verb: b.verb, lineId: b.line_id ?? null, costCents: b.cost_cents }, opts.clock.now());
    },
  );
}

import { normalizeIP } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { count, rateLimited, setRateLimitHeaders, type RateRule } from './limiter.js';
import { clientAddress } from './transport.js';

/*
 * Self-rotation's two budgets (spec §7). The route authenticates itself (key + rotation secret), so
 * it counts its own attempts:
 *
 * - an attempt whose credentials both match, whatever the state of the key's rotation chain (a
 *   rotation, a retry, a revoked agent), counts against its agent: the `agents.self_rotate` policy,
 *   keyed on the chain's agent_id (rate-limit.ts), so agents behind one NAT have a budget each;
 * - a failed attempt (no, malformed or unknown key, wrong secret, no rotation configured, no
 *   secret in the body) counts against the client address, an IPv6 client by its /64 (one host
 *   usually holds a whole /64): `agents.self_rotate.failures`. An address over it is refused before
 *   any key is looked up or any argon2 verify runs, so guessing costs the guesser. A success never
 *   counts against the address.
 */

export const SELF_ROTATE_FAILURES = 'agents.self_rotate.failures';
/** 10 failed self-rotations per 15 minutes per address; see RATE_LIMIT_AGENTS_SELF_ROTATE_FAILURES. */
export const SELF_ROTATE_FAILURES_DEFAULT: RateRule = { max: 10, windowSeconds: 900 };

export interface AgentAttempts {
  /** Counts an attempt whose credentials matched against its agent; rate_limited past the budget. */
  countAgent(request: FastifyRequest, reply: FastifyReply, agentId: string): Promise<void>;
  /** Counts a failed attempt against the client address. */
  countFailure(request: FastifyRequest, reply: FastifyReply): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    agentAttempts: AgentAttempts;
  }
  interface FastifyRequest {
    /** The agent a self-rotation's credentials named, once they matched (the agent policy's key). */
    agentId?: string;
  }
}

/** The address check (a route-level onRequest hook) and the failure count, over one limiter. */
export function selfRotateFailureLimits(app: FastifyInstance, rule: RateRule) {
  const limiter = app.createRateLimit({
    max: rule.max,
    timeWindow: rule.windowSeconds * 1000,
    // normalizeIP: an IPv4-mapped address as IPv4, an IPv6 one as the start of its /64.
    keyGenerator: (request) => `${SELF_ROTATE_FAILURES}:${normalizeIP(clientAddress(request) ?? 'unknown', 64)}`,
  });
  return {
    async checkAddress(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const res = await count(request, limiter, false);
      if (res && res.remaining <= 0) {
        setRateLimitHeaders(reply, SELF_ROTATE_FAILURES, rule, 0, res.ttlInSeconds);
        throw rateLimited(res.ttlInSeconds);
      }
    },
    async countFailure(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const res = await count(request, limiter);
      if (res) setRateLimitHeaders(reply, SELF_ROTATE_FAILURES, rule, res.remaining, res.ttlInSeconds);
    },
  };
}

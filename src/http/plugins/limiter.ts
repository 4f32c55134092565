import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/errors.js';

/* What every limiter of rate-limit.ts and agent-attempts.ts shares: the rule, the count, the headers. */

export interface RateRule {
  max: number;
  windowSeconds: number;
}

export type Limiter = ReturnType<FastifyInstance['createRateLimit']>;
type LimiterResult = Extract<Awaited<ReturnType<Limiter>>, { isAllowed: false }>;

/** The IETF draft headers, naming the policy a response was counted against. */
export function setRateLimitHeaders(reply: FastifyReply, name: string, rule: RateRule, remaining: number, resetSeconds: number) {
  reply.header('ratelimit-policy', `"${name}";q=${rule.max};w=${rule.windowSeconds}`);
  reply.header('ratelimit', `"${name}";r=${remaining};t=${resetSeconds}`);
}

export const rateLimited = (retryAfterSeconds: number) =>
  new DomainError('rate_limited', undefined, [], { retryAfterSeconds: Math.max(1, retryAfterSeconds) });

/** Runs a limiter; a store failure is logged and the request served (counters must never block). */
export async function count(request: FastifyRequest, limiter: Limiter, increment = true): Promise<LimiterResult | null> {
  try {
    const res = await limiter(request, { increment });
    return res.isAllowed ? null : res;
  } catch (err) {
    request.log.warn({ err: { message: (err as Error).message } }, 'rate-limit counter failed; request served unlimited');
    return null;
  }
}

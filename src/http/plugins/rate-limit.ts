import fastifyRateLimit, { normalizeIP, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Clock } from '../../domain/clock.js';
import type { Metrics } from '../../domain/metrics/metrics.js';
import { MemoryCounterStore, RedisCounterStore, type CounterStore } from './counter-stores.js';
import { LIMIT_NAMES, type LimitName } from './limits.js';
import { SELF_ROTATE_FAILURES_DEFAULT, selfRotateFailureLimits } from './agent-attempts.js';
import { count, rateLimited, setRateLimitHeaders, type Limiter, type RateRule } from './limiter.js';
import { clientAddress } from './transport.js';

export type { RateRule };

/*
 * Rate limits (spec §4, §6, §7) and brute-force damping, on @fastify/rate-limit's limiter
 * (createRateLimit) with our own counter stores (counter-stores.ts).
 *
 * A route names its policy (`config: { limit: 'keys.mint' }`); an onRoute hook adds the limiter as a
 * route-level onRequest hook, which Fastify runs after the instance-level ones, so after the auth
 * plugin has set request.principal: the limit is keyed on the credential, and a limited caller pays
 * for no body parsing or validation. Every response of a limited route carries the IETF draft
 * headers (draft-ietf-httpapi-ratelimit-headers, structured fields):
 *   RateLimit-Policy: "keys.mint";q=60;w=3600
 *   RateLimit: "keys.mint";r=59;t=3600
 *
 * Brute-force damping: every failed authentication (401) counts against the client IP; an IP over
 * the limit gets 429 before its token is even parsed, so guessing costs the attacker, not the
 * database. It is per IP, so other clients are not slowed.
 */

interface Policy {
  /**
   * Whose counter a request counts against: the authenticated credential, or (self-rotation, which
   * authenticates itself) the agent once both its credentials matched (agent-attempts.ts).
   */
  per: 'credential' | 'agent' | 'credential_agent';
  defaults: RateRule;
  /** Retry-After on 429: the contract's fixed seconds, or 'reset' = the real wait until the window ends. */
  retryAfter: number | 'reset';
}

/** The contract's table: per service key per route (§4), per API key (§6), per agent (§7). */
export const POLICIES: Record<LimitName, Policy> = {
  'keys.mint': { per: 'credential', defaults: { max: 60, windowSeconds: 3600 }, retryAfter: 60 },
  'keys.list': { per: 'credential', defaults: { max: 600, windowSeconds: 3600 }, retryAfter: 60 },
  'keys.get': { per: 'credential', defaults: { max: 600, windowSeconds: 3600 }, retryAfter: 60 },
  'keys.update': { per: 'credential', defaults: { max: 120, windowSeconds: 3600 }, retryAfter: 60 },
  'keys.revoke': { per: 'credential', defaults: { max: 120, windowSeconds: 3600 }, retryAfter: 60 },
  'keys.rotate': { per: 'credential', defaults: { max: 30, windowSeconds: 3600 }, retryAfter: 120 },
  'audit.read': { per: 'credential', defaults: { max: 60, windowSeconds: 3600 }, retryAfter: 60 },
  // Self-rotation authenticates itself (key + rotation secret): an attempt whose credentials match
  // counts against its agent (the rotation chain), so agents behind one address do not share a
  // budget; a failed one counts against the client address (SELF_ROTATE_FAILURES_DEFAULT).
  'agents.self_rotate': { per: 'agent', defaults: { max: 3, windowSeconds: 900 }, retryAfter: 'reset' },
  // An agent's view of itself (GET /v1/agents/self, POST /v1/agents/self/check): ten a minute per API
  // key, enough for a planner that checks before each action, cheap enough to be no oracle to hammer.
  'agents.self_read': { per: 'credential', defaults: { max: 600, windowSeconds: 3600 }, retryAfter: 60 },
  'agents.self_check': { per: 'credential', defaults: { max: 600, windowSeconds: 3600 }, retryAfter: 60 },
  // Delegation mints keys: 60 an hour per agent (its rotation chain, so rotating does not reset it).
  'agents.delegate': { per: 'credential_agent', defaults: { max: 60, windowSeconds: 3600 }, retryAfter: 60 },
  // An agent reading and revoking the keys it delegated.
  'agents.delegated_keys': { per: 'credential_agent', defaults: { max: 600, windowSeconds: 3600 }, retryAfter: 60 },
};

/** 60 failed authentications per minute per IP; see RATE_LIMIT_AUTH_FAILURES in config.ts. */
const AUTH_FAILURES_DEFAULT: RateRule = { max: 60, windowSeconds: 60 };
const AUTH_FAILURES = 'auth.failures';

export interface RateLimitOptions {
  /** Per-policy overrides; unset policies use the contract's values. */
  limits?: Partial<Record<LimitName, RateRule>>;
  authFailures?: RateRule;
  /** Failed self-rotations per client address; see RATE_LIMIT_AGENTS_SELF_ROTATE_FAILURES. */
  selfRotateFailures?: RateRule;
  /** Shared counters; without it they live in this process. */
  redis?: { url: string; keyPrefix: string; connectTimeoutMs: number; commandTimeoutMs: number };
}

export interface RateLimitPluginOptions extends RateLimitOptions {
  clock: Clock;
  /** Where the counter store reports whether it fell back from Redis (a scrape-time gauge). */
  metrics?: Pick<Metrics, 'sources'>;
}


declare module 'fastify' {
  interface FastifyInstance {
    /** Counts one failed authentication against the request's client IP (the auth plugin calls it). */
    recordAuthFailure(request: FastifyRequest): Promise<void>;
  }
}

const clientIp = (request: FastifyRequest) => normalizeIP(clientAddress(request) ?? 'unknown');

/** The counters (Redis when configured, else this process's), closed with the app, as @fastify/rate-limit's store. */
async function registerCounterStore(app: FastifyInstance, opts: RateLimitPluginOptions): Promise<void> {
  const store: CounterStore = opts.redis
    ? await RedisCounterStore.open({ ...opts.redis, clock: opts.clock, log: app.log })
    : new MemoryCounterStore(opts.clock);
  app.addHook('onClose', () => store.close());
  if (opts.metrics) opts.metrics.sources.rateLimitStore = () => ({ shared: !!opts.redis, fallback: store.fallingBack });
  // @fastify/rate-limit builds its store with `new`; a function returning an object yields that object.
  const storeCtor = function sharedStore() {
    return store;
  } as unknown as FastifyRateLimitStoreCtor;
  await app.register(fastifyRateLimit, { global: false, store: storeCtor });
}

/** One limiter per policy, with its rule (the configured override or the contract's value). */
function policyLimiters(app: FastifyInstance, limits: RateLimitOptions['limits']) {
  const rules = {} as Record<LimitName, RateRule>;
  const limiters = {} as Record<LimitName, Limiter>;
  for (const name of LIMIT_NAMES) {
    const policy = POLICIES[name];
    const rule = (rules[name] = limits?.[name] ?? policy.defaults);
    limiters[name] = app.createRateLimit({
      max: rule.max,
      timeWindow: rule.windowSeconds * 1000,
      keyGenerator: (request) => {
        // An agent policy is counted by the route once it knows the agent (agent-attempts.ts).
        if (policy.per === 'agent') return `${name}:agent:${request.agentId ?? ''}`;
        const p = request.principal;
        if (policy.per === 'credential_agent' && p?.tier === 'api') return `${name}:agent:${p.key.agentId}`;
        // A credential policy always runs after authentication; the IP is only a safety net.
        return p ? `${name}:${p.id}` : `${name}:ip:${clientIp(request)}`;
      },
    });
  }
  return { rules, limiters };
}

/** Counts a request against a policy: its headers, and rate_limited past the budget. */
async function enforcePolicy(request: FastifyRequest, reply: FastifyReply, name: LimitName, rule: RateRule, limiter: Limiter) {
  const res = await count(request, limiter);
  if (!res) return;
  const reset = res.ttlInSeconds;
  setRateLimitHeaders(reply, name, rule, res.remaining, reset);
  if (res.isExceeded) {
    const retryAfter = POLICIES[name].retryAfter;
    throw rateLimited(retryAfter === 'reset' ? reset : retryAfter);
  }
}

/**
 * Adds each limited route's policy as a route-level onRequest hook (after authentication); a route
 * of an agent policy gets the client address's failure check there instead, and counts the agent
 * itself (request.countAgentAttempt) once its credentials matched.
 */
function registerPolicies(app: FastifyInstance, opts: RateLimitOptions): void {
  const { rules, limiters } = policyLimiters(app, opts.limits);
  const failures = selfRotateFailureLimits(app, opts.selfRotateFailures ?? SELF_ROTATE_FAILURES_DEFAULT);
  app.decorate('agentAttempts', {
    countAgent: (request: FastifyRequest, reply: FastifyReply, agentId: string) => {
      request.agentId = agentId;
      return enforcePolicy(request, reply, 'agents.self_rotate', rules['agents.self_rotate'], limiters['agents.self_rotate']);
    },
    countFailure: failures.countFailure,
  });
  const enforce = (name: LimitName) =>
    async function rateLimitHook(request: FastifyRequest, reply: FastifyReply) {
      await enforcePolicy(request, reply, name, rules[name], limiters[name]);
    };
  app.addHook('onRoute', (route) => {
    const name = route.config?.limit;
    if (!name) return;
    if (!POLICIES[name]) throw new Error(`unknown rate-limit policy "${name}" on ${route.method} ${route.url}`);
    const hooks = route.onRequest ? (Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]) : [];
    const hook = POLICIES[name].per === 'agent' ? failures.checkAddress : enforce(name);
    route.onRequest = [...hooks, hook] as typeof route.onRequest;
  });
}

/** Brute-force damping. Registered before the auth plugin, so it runs before any token is looked up. */
function registerAuthFailureDamping(app: FastifyInstance, failureRule: RateRule): void {
  const failures = app.createRateLimit({
    max: failureRule.max,
    timeWindow: failureRule.windowSeconds * 1000,
    keyGenerator: (request) => `${AUTH_FAILURES}:${clientIp(request)}`,
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!request.routeOptions.config?.auth) return;
    const res = await count(request, failures, false);
    if (res && res.remaining <= 0) {
      setRateLimitHeaders(reply, AUTH_FAILURES, failureRule, 0, res.ttlInSeconds);
      throw rateLimited(res.ttlInSeconds);
    }
  });
  app.decorate('recordAuthFailure', async (request: FastifyRequest) => {
    await count(request, failures);
  });
}

export const rateLimitPlugin = fp<RateLimitPluginOptions>(
  async (app, opts) => {
    await registerCounterStore(app, opts);
    registerPolicies(app, opts);
    registerAuthFailureDamping(app, opts.authFailures ?? AUTH_FAILURES_DEFAULT);
  },
  { name: 'keyplane-rate-limit' },
);

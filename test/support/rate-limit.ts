import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import { buildApp, type AppDeps } from '../../src/app.js';
import { createServices } from '../../src/services.js';
import { DomainError } from '../../src/domain/errors.js';
import type { LimitName } from '../../src/http/plugins/limits.js';
import { call, errorCode, recordSecrets, testDatabase, testLogger, type CallResult } from './harness.js';

/** A public app with extra routes registered before it is ready (routes of other issues, probes). */
export async function buildLimitedApp(
  overrides: Partial<AppDeps> = {},
  extra?: (app: FastifyInstance) => Promise<void> | void,
): Promise<{ app: FastifyInstance; clock: FrozenClock }> {
  const clock = new FrozenClock();
  const app = await buildApp({ services: createServices(await testDatabase()), logger: testLogger(), clock, ...overrides });
  app.addHook('onSend', async (_req, _reply, payload) => {
    if (typeof payload === 'string') recordSecrets(payload);
    return payload;
  });
  if (extra) await extra(app);
  await app.ready();
  return { app, clock };
}

/**
 * Probe routes, one per policy, declared exactly as the real routes declare theirs: they prove the
 * plugin applies any named policy to any route. The self-rotation probe authenticates itself like
 * the real route does (no auth tier): it fails (counted against the address) unless its body says
 * `{"ok": true}`, and counts a success against the agent its body names.
 */
export function probeRoutes(app: FastifyInstance): void {
  const tiers: Partial<Record<LimitName, 'service' | 'api'>> = {
    'keys.mint': 'service',
    'keys.list': 'service',
    'keys.get': 'service',
    'keys.update': 'service',
    'keys.revoke': 'service',
    'keys.rotate': 'service',
    'audit.read': 'api',
    'agents.self_read': 'api',
    'agents.self_check': 'api',
  };
  for (const [name, auth] of Object.entries(tiers)) {
    app.get(`/v1/probe/${name}`, { config: { auth, limit: name as LimitName } }, async () => ({ ok: true }));
  }
  app.post('/v1/probe/agents.self_rotate', { config: { limit: 'agents.self_rotate' } }, async (request, reply) => {
    const body = request.body as { ok?: boolean; agent?: string } | undefined;
    if (body?.ok !== true) {
      await app.agentAttempts.countFailure(request, reply);
      throw new DomainError('invalid_api_key');
    }
    await app.agentAttempts.countAgent(request, reply, body.agent ?? 'agent-1');
    return { ok: true };
  });
}

export function expectLimitHeaders(res: CallResult, name: string, q: number, w: number, r: number, t: number): void {
  expect(res.headers['ratelimit-policy']).toBe(`"${name}";q=${q};w=${w}`);
  expect(res.headers['ratelimit']).toBe(`"${name}";r=${r};t=${t}`);
}

export function expectRateLimited(res: CallResult, retryAfter: number): void {
  expect(res.status).toBe(429);
  expect(errorCode(res)).toBe('rate_limited');
  expect(res.headers['retry-after']).toBe(String(retryAfter));
}

export { call };

/** A clock that stands still until told, so window arithmetic (t=, Retry-After) is exact. */
export class FrozenClock {
  private ms = Date.now();
  now(): Date {
    return new Date(this.ms);
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

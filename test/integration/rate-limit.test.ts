import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateToken } from '../../src/domain/auth/credentials.js';
import { LIMIT_NAMES } from '../../src/http/plugins/limits.js';
import { POLICIES } from '../../src/http/plugins/rate-limit.js';
import { addServiceKey, createTenant, storeOf, testDatabase, type Tenant, type TestApp } from '../support/harness.js';
import {
  buildLimitedApp,
  call,
  expectLimitHeaders,
  expectRateLimited,
  probeRoutes,
  type FrozenClock,
} from '../support/rate-limit.js';

/*
 * In-process counters (no REDIS_URL). Windows move with an injected clock that stands still, so
 * every t= and Retry-After is exact and no test sleeps. The Redis store and several instances are
 * tested in test/fleet/.
 */

const apps: FastifyInstance[] = [];
afterAll(() => Promise.all(apps.map((a) => a.close())));

async function limitedApp(...args: Parameters<typeof buildLimitedApp>) {
  const built = await buildLimitedApp(...args);
  apps.push(built.app);
  return built;
}

/** createTenant and addServiceKey only use the store and the clock of a TestApp. */
const world = async (clock: FrozenClock) => ({ store: storeOf(await testDatabase()), clock }) as unknown as TestApp;
const tenantFor = async (clock: FrozenClock): Promise<Tenant> => createTenant(await world(clock));

const badToken = () => generateToken('service', 'test').plaintext;

describe('GET /v1/keys (keys.list) with a configured limit of 3 per minute', () => {
  let app: FastifyInstance;
  let clock: FrozenClock;
  let tenant: Tenant;
  beforeAll(async () => {
    ({ app, clock } = await limitedApp({ rateLimit: { limits: { 'keys.list': { max: 3, windowSeconds: 60 } } } }));
    tenant = await tenantFor(clock);
  });

  it('counts per service key across both prefixes; the 4th answers 429 with the exact headers', async () => {
    const urls = ['/v1/keys', '/api/v1/keys', '/v1/keys'];
    for (const [i, url] of urls.entries()) {
      const res = await call(app, 'GET', url, { token: tenant.serviceKey });
      expect(res.status).toBe(200);
      expectLimitHeaders(res, 'keys.list', 3, 60, 2 - i, 60);
    }
    clock.advance(15_000);
    const limited = await call(app, 'GET', '/api/v1/keys', { token: tenant.serviceKey });
    expectRateLimited(limited, 60);
    expectLimitHeaders(limited, 'keys.list', 3, 60, 0, 45);
    // The limit runs before validation: a limited caller pays for no parsing, and learns nothing.
    const invalid = await call(app, 'GET', '/v1/keys?limit=1000', { token: tenant.serviceKey });
    expectRateLimited(invalid, 60);
  });

  it('another service key of the same account is unaffected', async () => {
    const other = await addServiceKey(await world(clock), tenant.accountId);
    const res = await call(app, 'GET', '/v1/keys', { token: other.serviceKey });
    expect(res.status).toBe(200);
    expectLimitHeaders(res, 'keys.list', 3, 60, 2, 60);
  });

  it('the window resets when it ends', async () => {
    expectRateLimited(await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey }), 60);
    clock.advance(45_000);
    const res = await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey });
    expect(res.status).toBe(200);
    expectLimitHeaders(res, 'keys.list', 3, 60, 2, 60);
  });

  it('a request that fails authentication is not counted against any key and carries no limit headers', async () => {
    const res = await call(app, 'GET', '/v1/keys', { token: badToken() });
    expect(res.status).toBe(401);
    expect(res.headers['ratelimit']).toBeUndefined();
  });
});

describe("every policy at the contract's values (routes declaring config.limit)", () => {
  let app: FastifyInstance;
  let clock: FrozenClock;
  let tenant: Tenant;
  beforeAll(async () => {
    ({ app, clock } = await limitedApp({}, probeRoutes));
    tenant = await tenantFor(clock);
  });

  const credentialPolicies = LIMIT_NAMES.filter((n) => POLICIES[n].per === 'credential');
  it.each(credentialPolicies)('%s: N allowed, the N+1-th is 429 with the table’s Retry-After', async (name) => {
    const { max, windowSeconds } = POLICIES[name].defaults;
    const token = ['audit.read', 'agents.self_read', 'agents.self_check'].includes(name) ? tenant.apiKey : tenant.serviceKey;
    for (let i = 1; i <= max; i++) {
      const res = await call(app, 'GET', `/v1/probe/${name}`, { token });
      expect(res.status).toBe(200);
      if (i === 1 || i === max) expectLimitHeaders(res, name, max, windowSeconds, max - i, windowSeconds);
    }
    const limited = await call(app, 'GET', `/v1/probe/${name}`, { token });
    expectRateLimited(limited, name === 'keys.rotate' ? 120 : 60);
    expectLimitHeaders(limited, name, max, windowSeconds, 0, windowSeconds);
  });

  it('the contract’s numbers: 60, 600, 600, 120, 120, 30 per hour; audit 60 per hour; self-rotation 3 per 15 min; self read and check 600 per hour; delegation 60 per hour', () => {
    const table = Object.fromEntries(LIMIT_NAMES.map((n) => [n, [POLICIES[n].defaults.max, POLICIES[n].defaults.windowSeconds]]));
    expect(table).toEqual({
      'keys.mint': [60, 3600],
      'keys.list': [600, 3600],
      'keys.get': [600, 3600],
      'keys.update': [120, 3600],
      'keys.revoke': [120, 3600],
      'keys.rotate': [30, 3600],
      'audit.read': [60, 3600],
      'agents.self_rotate': [3, 900],
      'agents.self_read': [600, 3600],
      'agents.self_check': [600, 3600],
      'agents.delegate': [60, 3600],
      'agents.delegated_keys': [600, 3600],
    });
  });

  it('agents.self_rotate: 3 matched attempts per agent; the 4th gets the real remaining wait; other agents on the address are unaffected', async () => {
    const attempt = (agent: string, ip = '198.51.100.7') =>
      app.inject({ method: 'POST', url: '/v1/probe/agents.self_rotate', payload: { ok: true, agent }, remoteAddress: ip });
    expect((await attempt('a1')).statusCode).toBe(200);
    expect((await attempt('a1', '198.51.100.99')).statusCode).toBe(200);
    const third = await attempt('a1');
    expect(third.statusCode).toBe(200);
    expect(third.headers['ratelimit']).toBe('"agents.self_rotate";r=0;t=900');

    const fourth = await attempt('a1', '198.51.100.50');
    expect(fourth.statusCode).toBe(429);
    expect(fourth.json().error.code).toBe('rate_limited');
    expect(fourth.headers['retry-after']).toBe('900');
    expect(fourth.headers['ratelimit-policy']).toBe('"agents.self_rotate";q=3;w=900');

    clock.advance(300_000);
    const later = await attempt('a1');
    expect(later.statusCode).toBe(429);
    expect(later.headers['retry-after']).toBe('600');
    expect(later.headers['ratelimit']).toBe('"agents.self_rotate";r=0;t=600');

    // Another agent on the same address has its own budget.
    const other = await attempt('a2');
    expect(other.statusCode).toBe(200);
    expect(other.headers['ratelimit']).toBe('"agents.self_rotate";r=2;t=900');

    clock.advance(600_000);
    const reset = await attempt('a1');
    expect(reset.statusCode).toBe(200);
    expect(reset.headers['ratelimit']).toBe('"agents.self_rotate";r=2;t=900');
  });

  it('agents.self_rotate.failures: 10 failures per address (an IPv6 client by its /64), then every attempt from it is 429', async () => {
    const attempt = (ok: boolean, ip: string) =>
      app.inject({ method: 'POST', url: '/v1/probe/agents.self_rotate', payload: { ok, agent: `ok-${ip}` }, remoteAddress: ip });
    for (let i = 1; i <= 10; i++) {
      const res = await attempt(false, `2001:db8:7:1::${i.toString(16)}`);
      expect(res.statusCode).toBe(401);
      expect(res.headers['ratelimit']).toBe(`"agents.self_rotate.failures";r=${10 - i};t=900`);
    }
    const refused = await attempt(true, '2001:db8:7:1:ffff::1');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('900');
    expect(refused.headers['ratelimit-policy']).toBe('"agents.self_rotate.failures";q=10;w=900');
    // Another /64, and IPv4, have their own budgets; successes never count against an address.
    expect((await attempt(true, '2001:db8:7:2::1')).statusCode).toBe(200);
    for (let i = 0; i < 12; i++) expect((await attempt(true, `2001:db8:7:3::${i + 1}`)).statusCode).toBe(200);
    clock.advance(900_000);
    expect((await attempt(true, '2001:db8:7:1::1')).statusCode).toBe(200);
  });
});

describe('brute-force damping: failed authentications per client IP', () => {
  let app: FastifyInstance;
  let clock: FrozenClock;
  let tenant: Tenant;
  beforeAll(async () => {
    ({ app, clock } = await limitedApp({ rateLimit: { authFailures: { max: 5, windowSeconds: 60 } } }));
    tenant = await tenantFor(clock);
  });
  const get = (token: string | undefined, ip: string) =>
    app.inject({
      method: 'GET',
      url: '/v1/keys',
      remoteAddress: ip,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  it('an IP over the limit gets 429 before its credential is looked at, even a valid one', async () => {
    const attacker = '192.0.2.10';
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await get(i % 2 ? badToken() : undefined, attacker)).statusCode);
    expect(codes).toEqual([401, 401, 401, 401, 401]);

    const blocked = await get(tenant.serviceKey, attacker);
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error.code).toBe('rate_limited');
    expect(blocked.headers['retry-after']).toBe('60');
    expect(blocked.headers['ratelimit-policy']).toBe('"auth.failures";q=5;w=60');
    expect(blocked.headers['ratelimit']).toBe('"auth.failures";r=0;t=60');
    expect((await get(badToken(), attacker)).statusCode).toBe(429);
  });

  it('other clients are not slowed: their good requests pass, their bad ones are plain 401s', async () => {
    expect((await get(tenant.serviceKey, '192.0.2.11')).statusCode).toBe(200);
    expect((await get(badToken(), '192.0.2.11')).statusCode).toBe(401);
  });

  it('successful requests do not count as failures', async () => {
    for (let i = 0; i < 10; i++) expect((await get(tenant.serviceKey, '192.0.2.12')).statusCode).toBe(200);
  });

  it('the damping lifts when the window ends', async () => {
    clock.advance(60_000);
    expect((await get(tenant.serviceKey, '192.0.2.10')).statusCode).toBe(200);
  });

  it('default: 60 failures a minute, the 61st request is refused', async () => {
    const { app: plain } = await limitedApp();
    const codes = new Set<number>();
    for (let i = 0; i < 60; i++) codes.add((await plain.inject({ method: 'GET', url: '/v1/keys', remoteAddress: '192.0.2.20', headers: { authorization: `Bearer ${badToken()}` } })).statusCode);
    expect([...codes]).toEqual([401]);
    const res = await plain.inject({ method: 'GET', url: '/v1/keys', remoteAddress: '192.0.2.20', headers: { authorization: `Bearer ${tenant.serviceKey}` } });
    expect(res.statusCode).toBe(429);
    expect(res.headers['retry-after']).toBe('60');
  });
});

describe('the client IP behind a proxy (TRUST_PROXY)', () => {
  const attempt = (app: FastifyInstance, forwardedFor: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/probe/agents.self_rotate',
      payload: { ok: false },
      remoteAddress: '10.0.0.2',
      headers: { 'x-forwarded-for': forwardedFor },
    });

  it('with trustProxy, X-Forwarded-For decides the client IP', async () => {
    const { app } = await limitedApp({ trustProxy: true }, probeRoutes);
    for (let i = 0; i < 10; i++) expect((await attempt(app, '203.0.113.1')).statusCode).toBe(401);
    expect((await attempt(app, '203.0.113.1')).statusCode).toBe(429);
    expect((await attempt(app, '203.0.113.2')).statusCode).toBe(401);
  });

  it('without it, X-Forwarded-For is ignored: a client cannot pick a fresh IP per request', async () => {
    const { app } = await limitedApp({}, probeRoutes);
    for (let i = 0; i < 10; i++) expect((await attempt(app, `203.0.113.${10 + i}`)).statusCode).toBe(401);
    expect((await attempt(app, '203.0.113.99')).statusCode).toBe(429);
  });
});

describe('the key routes declare their policies (configured small limits)', () => {
  let app: FastifyInstance;
  let clock: FrozenClock;
  let tenant: Tenant;
  const limits = {
    'keys.mint': { max: 2, windowSeconds: 60 },
    'keys.get': { max: 2, windowSeconds: 60 },
    'keys.update': { max: 1, windowSeconds: 60 },
    'keys.revoke': { max: 1, windowSeconds: 60 },
    'keys.rotate': { max: 1, windowSeconds: 60 },
  };
  beforeAll(async () => {
    ({ app, clock } = await limitedApp({ rateLimit: { limits } }));
    tenant = await tenantFor(clock);
  });
  const mint = (name: unknown) => call(app, 'POST', '/v1/keys', { token: tenant.serviceKey, body: { name }, headers: { 'idempotency-key': `m-${Math.random()}` } });

  it('every response of a limited route carries the headers, errors included; the refused mint has no effect', async () => {
    const invalid = await mint('');
    expect(invalid.status).toBe(422);
    expectLimitHeaders(invalid, 'keys.mint', 2, 60, 1, 60);
    const ok = await mint('counted');
    expect(ok.status).toBe(201);
    expectLimitHeaders(ok, 'keys.mint', 2, 60, 0, 60);
    const refused = await mint('refused');
    expectRateLimited(refused, 60);
    const list = await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey });
    expect(list.body.keys.map((k: { name: string }) => k.name)).toEqual(['counted']);

    const missing = await call(app, 'GET', '/v1/keys/00000000-0000-4000-8000-000000000000', { token: tenant.serviceKey });
    expect(missing.status).toBe(404);
    expectLimitHeaders(missing, 'keys.get', 2, 60, 1, 60);
  });

  it('patch, revoke and rotate each count on their own; rotate answers Retry-After 120', async () => {
    clock.advance(60_000);
    const [k1, k2] = [(await mint('one')).body.key.id, (await mint('two')).body.key.id];
    expect((await call(app, 'PATCH', `/v1/keys/${k1}`, { token: tenant.serviceKey, body: { name: 'renamed' } })).status).toBe(200);
    expectRateLimited(await call(app, 'PATCH', `/v1/keys/${k1}`, { token: tenant.serviceKey, body: { name: 'again' } }), 60);
    const rotate = (id: string) => call(app, 'POST', `/v1/keys/${id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `r-${Math.random()}` } });
    expect((await rotate(k1)).status).toBe(201);
    const refused = await rotate(k2);
    expectRateLimited(refused, 120);
    expectLimitHeaders(refused, 'keys.rotate', 1, 60, 0, 60);
    expect((await call(app, 'DELETE', `/v1/keys/${k2}`, { token: tenant.serviceKey })).status).toBe(200);
    expectRateLimited(await call(app, 'DELETE', `/v1/keys/${k2}`, { token: tenant.serviceKey }), 60);
  });
});

describe('the audit and self-rotation routes declare theirs', () => {
  let app: FastifyInstance;
  let clock: FrozenClock;
  let tenant: Tenant;
  beforeAll(async () => {
    ({ app, clock } = await limitedApp({ rateLimit: { limits: { 'audit.read': { max: 2, windowSeconds: 60 } } } }));
    tenant = await tenantFor(clock);
  });

  it('GET /v1/audit: per API key, the 3rd read refused with Retry-After 60', async () => {
    for (const r of [1, 0]) {
      const res = await call(app, 'GET', '/v1/audit', { token: tenant.apiKey });
      expect(res.status).toBe(200);
      expectLimitHeaders(res, 'audit.read', 2, 60, r, 60);
    }
    expectRateLimited(await call(app, 'GET', '/v1/audit', { token: tenant.apiKey }), 60);
  });

  it('POST /v1/agents/self/rotate-key: 10 failed attempts per address at the default, then the real wait', async () => {
    const attempt = () =>
      app.inject({
        method: 'POST',
        url: '/v1/agents/self/rotate-key',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tenant.apiKey}` },
        payload: { rotationSecret: 'rs_wrong' },
        remoteAddress: '198.18.0.1',
      });
    for (let i = 0; i < 10; i++) expect((await attempt()).statusCode).not.toBe(429);
    const refused = await attempt();
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe('rate_limited');
    expect(refused.headers['retry-after']).toBe('900');
    expect(refused.headers['ratelimit-policy']).toBe('"agents.self_rotate.failures";q=10;w=900');
    clock.advance(100_000);
    expect((await attempt()).headers['retry-after']).toBe('800');
  });
});

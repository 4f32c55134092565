import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, recordSecrets, storeOf, testDatabase, type Tenant, type TestApp } from '../support/harness.js';
import { buildLimitedApp, call, expectLimitHeaders, expectRateLimited, type FrozenClock } from '../support/rate-limit.js';

/*
 * The delegation routes' limits count per agent (its rotation chain), not per key: an agent that
 * rotates its key keeps its count, and another agent of the same service key has its own.
 */

let app: FastifyInstance;
let clock: FrozenClock;
let tenant: Tenant;
beforeAll(async () => {
  ({ app, clock } = await buildLimitedApp({
    rateLimit: { limits: { 'agents.delegate': { max: 2, windowSeconds: 60 }, 'agents.delegated_keys': { max: 2, windowSeconds: 60 } } },
  }));
  tenant = await createTenant({ store: storeOf(await testDatabase()), clock } as unknown as TestApp);
});
afterAll(() => app.close());

let seq = 0;
async function mintDelegator(): Promise<{ id: string; plaintext: string }> {
  const res = await call(app, 'POST', '/v1/keys', {
    token: tenant.serviceKey,
    headers: { 'idempotency-key': `limits-mint-${++seq}` },
    body: { name: 'orchestrator', can_delegate: true },
  });
  expect(res.status).toBe(201);
  recordSecrets(res.body.key.plaintext_key);
  return { id: res.body.key.id, plaintext: res.body.key.plaintext_key };
}

const delegate = (token: string) =>
  call(app, 'POST', '/v1/agents/self/keys', {
    token,
    headers: { 'idempotency-key': `limits-delegate-${++seq}` },
    body: { name: 'tool', permissions: 'read_only', budget_cents: 1, ttl_seconds: 600 },
  });

describe('agents.delegate and agents.delegated_keys', () => {
  it('POST /v1/agents/self/keys: per agent, across a rotation of its key; the 3rd refused with Retry-After 60', async () => {
    const agent = await mintDelegator();
    for (const r of [1, 0]) {
      const res = await delegate(agent.plaintext);
      expect(res.status).toBe(201);
      recordSecrets(res.body.key.plaintext_key);
      expectLimitHeaders(res, 'agents.delegate', 2, 60, r, 60);
    }
    const rotated = await call(app, 'POST', `/v1/keys/${agent.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `limits-rotate-${++seq}` } });
    expect(rotated.status).toBe(201);
    recordSecrets(rotated.body.key.plaintext_key);
    expectRateLimited(await delegate(rotated.body.key.plaintext_key), 60);
    // Another agent of the same service key counts on its own.
    const other = await mintDelegator();
    const fresh = await delegate(other.plaintext);
    expect(fresh.status).toBe(201);
    recordSecrets(fresh.body.key.plaintext_key);
    clock.advance(60_000);
    const later = await delegate(rotated.body.key.plaintext_key);
    expect(later.status).toBe(201);
    recordSecrets(later.body.key.plaintext_key);
  });

  it('GET and DELETE /v1/agents/self/keys share the agent reads-and-revokes budget', async () => {
    const agent = await mintDelegator();
    expect((await call(app, 'GET', '/v1/agents/self/keys', { token: agent.plaintext })).status).toBe(200);
    expect((await call(app, 'DELETE', '/v1/agents/self/keys/00000000-0000-4000-8000-000000000000', { token: agent.plaintext })).status).toBe(404);
    expectRateLimited(await call(app, 'GET', '/v1/agents/self/keys', { token: agent.plaintext }), 60);
  });
});

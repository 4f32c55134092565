import { describe, expect } from 'vitest';
import { mintAgent, type Agent } from '../support/agents.js';
import { recordSecrets, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * POST /v1/agents/self/rotate-key's budgets (spec §7): 3 attempts per 15 minutes per agent once its
 * key and secret match, 10 failed attempts per 15 minutes per client address. The window runs on
 * the app's injectable clock.
 */

const attempt = (t: TestApp, token: string, rotationSecret: string, ip: string) =>
  t.app.inject({
    method: 'POST',
    url: '/v1/agents/self/rotate-key',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ rotationSecret }),
    remoteAddress: ip,
  });

/** Rotates and returns the agent's new pair; fails the test on anything but 200. */
async function rotateOk(t: TestApp, agent: Agent, ip: string): Promise<Agent> {
  const res = await attempt(t, agent.apiKey, agent.rotationSecret!, ip);
  recordSecrets(res.body);
  expect(res.statusCode).toBe(200);
  expect(res.headers['ratelimit-policy']).toBe('"agents.self_rotate";q=3;w=900');
  const body = JSON.parse(res.body);
  return { id: agent.id, apiKey: body.apiKey, rotationSecret: body.rotationSecret };
}

const WRONG = `rs_${'w'.repeat(43)}`;

describe('self-rotation limits that fit a fleet', () => {
  it('20 agents behind one address rotate 3 times each: all 200; the 4th attempt of one agent is 429 and the others are unaffected', async ({ app: t, tenant }) => {
    const nat = '192.0.2.60';
    const minted = await Promise.all(Array.from({ length: 20 }, () => mintAgent(t, tenant.serviceKey, { selfRotation: true })));
    let first = minted[0]!;
    const others = minted.slice(1);
    for (let round = 0; round < 2; round++) {
      first = await rotateOk(t, first, nat);
      for (let i = 0; i < others.length; i++) others[i] = await rotateOk(t, others[i]!, nat);
      t.clock.advance(60_000);
    }
    first = await rotateOk(t, first, nat);
    const fourth = await attempt(t, first.apiKey, first.rotationSecret!, nat);
    expect(fourth.statusCode).toBe(429);
    expect(JSON.parse(fourth.body).error.code).toBe('rate_limited');
    expect(fourth.headers['ratelimit-policy']).toBe('"agents.self_rotate";q=3;w=900');
    // The window started at the first rotation, 2 minutes (plus the test's own run time) ago on the
    // app's clock: the real wait is what is left of its 15 minutes.
    const wait = Number(fourth.headers['retry-after']);
    expect(wait).toBeLessThanOrEqual(900 - 120);
    expect(wait).toBeGreaterThan(900 - 120 - 60);
    expect(fourth.headers['ratelimit']).toBe(`"agents.self_rotate";r=0;t=${wait}`);
    // The 19 others, behind the same address, still have their third rotation.
    for (let i = 0; i < others.length; i++) others[i] = await rotateOk(t, others[i]!, nat);
    // The refused attempt rotated nothing: the same pair works once the agent's window ends.
    t.clock.advance(wait * 1000);
    await rotateOk(t, first, nat);
  });

  it('11 bad secrets from one address: 401 ten times, 429 from the 11th (even with a good pair); a good agent on another address is unaffected', async ({ app: t, tenant }) => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const good = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const attacker = '192.0.2.61';
    for (let i = 1; i <= 10; i++) {
      const res = await attempt(t, agent.apiKey, WRONG, attacker);
      expect(res.statusCode).toBe(401);
      expect(res.headers['ratelimit']).toMatch(new RegExp(`^"agents.self_rotate.failures";r=${10 - i};t=(8[5-9]\\d|900)$`));
    }
    for (const [token, secret] of [
      [agent.apiKey, WRONG],
      [agent.apiKey, agent.rotationSecret!],
    ] as const) {
      const res = await attempt(t, token, secret, attacker);
      expect(res.statusCode).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(850);
      expect(res.headers['ratelimit-policy']).toBe('"agents.self_rotate.failures";q=10;w=900');
    }
    await rotateOk(t, good, '192.0.2.62');
    // The failures never touched the agent's own budget: from another address it rotates 3 times.
    let current = agent;
    for (let i = 0; i < 3; i++) current = await rotateOk(t, current, '192.0.2.63');
  });

  it('an unknown or malformed key counts against the address, a success never does', async ({ app: t, tenant }) => {
    const ip = '192.0.2.64';
    const agents = await Promise.all(Array.from({ length: 12 }, () => mintAgent(t, tenant.serviceKey, { selfRotation: true })));
    for (const agent of agents) await rotateOk(t, agent, ip);
    for (let i = 0; i < 10; i++) expect((await attempt(t, i % 2 ? 'sk_test_garbage' : 'garbage', WRONG, ip)).statusCode).toBe(401);
    expect((await attempt(t, 'garbage', WRONG, ip)).statusCode).toBe(429);
  });
});

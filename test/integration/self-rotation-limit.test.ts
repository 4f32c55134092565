import { describe, expect } from 'vitest';
import { mintAgent } from '../support/agents.js';
import { createTenant, recordSecrets } from '../support/harness.js';
import { it } from '../support/fixtures.js';

describe('POST /v1/agents/self/rotate-key: 3 attempts per 15 minutes per client IP (spec §7)', () => {
  it('a wrong secret is 401 and counts; the 4th attempt from one IP is 429 with Retry-After, other IPs are unaffected', async ({ app: t }) => {
    const tenant = await createTenant(t);
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const attempt = (rotationSecret: string, ip: string, token = agent.apiKey) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/agents/self/rotate-key',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        payload: JSON.stringify({ rotationSecret }),
        remoteAddress: ip,
      });
    const wrong = `rs_${'w'.repeat(43)}`;
    for (let i = 0; i < 3; i++) expect((await attempt(wrong, '192.0.2.77')).statusCode).toBe(401);
    const fourth = await attempt(agent.rotationSecret!, '192.0.2.77');
    expect(fourth.statusCode).toBe(429);
    expect(JSON.parse(fourth.body).error.code).toBe('rate_limited');
    expect(Number(fourth.headers['retry-after'])).toBeGreaterThan(0);
    const elsewhere = await attempt(agent.rotationSecret!, '192.0.2.78');
    recordSecrets(elsewhere.body);
    expect(elsewhere.statusCode).toBe(200);
    // The window is 15 minutes on the injectable clock.
    t.clock.advance(15 * 60_000 + 1_000);
    const next = JSON.parse(elsewhere.body);
    const later = await attempt(next.rotationSecret, '192.0.2.77', next.apiKey);
    recordSecrets(later.body);
    expect(later.statusCode).toBe(200);
  });
});

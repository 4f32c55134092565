import { describe, expect } from 'vitest';
import { generateToken } from '../../src/domain/auth/credentials.js';
import { ADMIN_TOKEN, call, createTenant, errorCode } from '../support/harness.js';
import { it } from '../support/fixtures.js';
import { withLastCharChanged } from '../support/tokens.js';

const INVALID = 'The API key is invalid or has been revoked.';

describe('authentication on /v1/keys (spec §2)', () => {
  it('a service key lists its (empty) keys on both path prefixes', async ({ app: t, tenant }) => {
    for (const prefix of ['/v1', '/api/v1']) {
      const res = await call(t.app, 'GET', `${prefix}/keys`, { token: tenant.serviceKey });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ keys: [], total: 0 });
    }
  });

  it('no header → 401 unauthorized', async ({ app: t }) => {
    const res = await call(t.app, 'GET', '/v1/keys');
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('unauthorized');
  });

  it('every bad credential → 401 invalid_api_key with one and the same message', async ({ app: t, tenant }) => {
    const svc = tenant.serviceKey;
    const wrongChecksum = withLastCharChanged(svc);
    const cases = {
      'portal API key (wrong tier)': tenant.apiKey,
      mangled: `${svc.slice(0, 20)}zz${svc.slice(22)}`,
      'wrong checksum': wrongChecksum,
      truncated: svc.slice(0, -3),
      'unknown but well-formed': generateToken('service', 'test').plaintext,
      garbage: 'hello',
      'admin token': ADMIN_TOKEN,
    };
    const messages = new Set<string>();
    for (const [name, token] of Object.entries(cases)) {
      const res = await call(t.app, 'GET', '/v1/keys', { token });
      expect(res.status, name).toBe(401);
      expect(errorCode(res), name).toBe('invalid_api_key');
      messages.add(res.body.error.message);
    }
    expect([...messages]).toEqual([INVALID]);
  });

  it('tolerates extra spaces after Bearer; rejects other schemes', async ({ app: t, tenant }) => {
    const ok = await call(t.app, 'GET', '/v1/keys', { headers: { authorization: `Bearer    ${tenant.serviceKey}` } });
    expect(ok.status).toBe(200);
    const basic = await call(t.app, 'GET', '/v1/keys', { headers: { authorization: `Basic ${tenant.serviceKey}` } });
    expect(basic.status).toBe(401);
    expect(errorCode(basic)).toBe('invalid_api_key');
  });

  it('a revoked service key may read for 60 s, then not at all', async ({ app: t }) => {
    const own = await createTenant(t);
    const revoke = await call(t.admin, 'DELETE', `/internal/v1/service-keys/${own.serviceKeyId}`, { token: ADMIN_TOKEN });
    expect(revoke.status).toBe(200);
    const inGrace = await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
    expect(inGrace.status).toBe(200);
    t.clock.advance(61_000);
    const after = await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
    expect(after.status).toBe(401);
    expect(errorCode(after)).toBe('invalid_api_key');
  });

  it('a rotated service key is replaced: the successor works, the old one only reads during grace', async ({ app: t }) => {
    const own = await createTenant(t);
    const rotated = await call(t.admin, 'POST', `/internal/v1/service-keys/${own.serviceKeyId}/rotate`, { token: ADMIN_TOKEN });
    expect(rotated.status).toBe(201);
    const successor = rotated.body.service_key.plaintext_key as string;
    expect((await call(t.app, 'GET', '/v1/keys', { token: successor })).status).toBe(200);
    t.clock.advance(61_000);
    expect((await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey })).status).toBe(401);
  });
});

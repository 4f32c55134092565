import { describe, expect } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createServices } from '../../src/services.js';
import { call, errorCode, testDatabase, testLogger } from '../support/harness.js';
import { appTest } from '../support/fixtures.js';

const it = appTest({ bodyLimit: 2048 });

describe('error envelope (spec §10)', () => {
  it('unknown route → 404 not_found', async ({ app: t }) => {
    const res = await call(t.app, 'GET', '/v1/nope');
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('not_found');
  });

  it('unknown method on a known path → 404 not_found', async ({ app: t, tenant }) => {
    const res = await call(t.app, 'PUT', '/v1/keys', { token: tenant.serviceKey, body: {} });
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('not_found');
  });

  it('malformed JSON → 422 validation_error, no parser text echoed', async ({ app: t }) => {
    const res = await call(t.admin, 'POST', '/internal/v1/accounts', {
      token: (await import('../support/harness.js')).ADMIN_TOKEN,
      payload: '{"name": ',
    });
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
    expect(res.raw).not.toMatch(/Unexpected|SyntaxError|at /);
  });

  it('wrong content type → 422 validation_error naming the header', async ({ app: t }) => {
    const { ADMIN_TOKEN } = await import('../support/harness.js');
    const res = await call(t.admin, 'POST', '/internal/v1/accounts', {
      token: ADMIN_TOKEN,
      payload: 'name=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
    expect(res.body.error.details[0].field).toBe('content-type');
  });

  it('a body over the limit → 413 payload_too_large', async ({ app: t }) => {
    const { ADMIN_TOKEN } = await import('../support/harness.js');
    const res = await call(t.admin, 'POST', '/internal/v1/accounts', { token: ADMIN_TOKEN, body: { name: 'x'.repeat(5000) } });
    expect(res.status).toBe(413);
    expect(errorCode(res)).toBe('payload_too_large');
  });

  it('bad query values → 422 with the field named', async ({ app: t, tenant }) => {
    for (const q of ['limit=0', 'limit=101', 'offset=-1', 'offset=100001', 'limit=abc', 'bogus=1']) {
      const res = await call(t.app, 'GET', `/v1/keys?${q}`, { token: tenant.serviceKey });
      expect(res.status, q).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
  });

  it('an empty JSON body is accepted where a route takes none (GET with Content-Type)', async ({ app: t, tenant }) => {
    const res = await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey, payload: '' });
    expect(res.status).toBe(200);
  });

  it('x-request-id: a well-formed one is echoed, anything else replaced', async ({ app: t }) => {
    const mine = await call(t.app, 'GET', '/healthz', { headers: { 'x-request-id': 'req-123.abc' } });
    expect(mine.headers['x-request-id']).toBe('req-123.abc');
    const bad = await call(t.app, 'GET', '/healthz', { headers: { 'x-request-id': 'a b<script>' } });
    expect(bad.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const none = await call(t.app, 'GET', '/v1/nope');
    expect(none.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('an unexpected error → generic 500 internal_error, nothing leaked', async () => {
    const app = await buildApp({ services: createServices(await testDatabase()), logger: testLogger() });
    app.get('/boom', async () => {
      throw new Error('secret detail: select * from api_keys');
    });
    const res = await call(app, 'GET', '/boom');
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'internal_error', message: 'An internal error occurred.', details: [] } });
    await app.close();
  });
});

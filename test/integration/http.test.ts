import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { it } from '../support/fixtures.js';

let base: string;
let adminBase: string;
it.beforeAll(async ({ app: t }) => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  await t.admin.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  adminBase = `http://127.0.0.1:${(t.admin.server.address() as AddressInfo).port}`;
});

describe('over real HTTP', () => {
  it('answers the SDK-style list call with Content-Type on a GET', async ({ tenant }) => {
    const res = await fetch(`${base}/api/v1/keys`, {
      headers: { authorization: `Bearer ${tenant.serviceKey}`, 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await res.json()).toEqual({ keys: [], total: 0 });
  });

  it('answers CORS preflight for any origin with the three headers the SDKs send', async () => {
    const res = await fetch(`${base}/v1/keys`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://agents.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,idempotency-key',
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const allowed = (res.headers.get('access-control-allow-headers') ?? '').toLowerCase();
    for (const h of ['authorization', 'content-type', 'idempotency-key']) expect(allowed).toContain(h);
  });

  it('the internal listener answers no CORS preflight', async () => {
    const res = await fetch(`${adminBase}/internal/v1/accounts`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.status).toBe(404);
  });

  it('a 401 over HTTP is the JSON envelope', async () => {
    const res = await fetch(`${base}/v1/keys`);
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: 'unauthorized', details: [] } });
  });
});

import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DOCUMENT_FILES, ROOT } from '../../scripts/openapi.js';
import { createTenant, createTestApp, type Tenant, type TestApp } from '../support/harness.js';
import type { paths } from '../support/openapi.types.js';
import { ResponseValidator } from '../support/openapi-validator.js';

/**
 * Drives the public API over real HTTP through a client typed by openapi-typescript from the
 * committed openapi.yaml. Every response is checked, on the client side, against that file: a
 * status it does not list or a body its schema rejects fails the call. The last test checks that
 * every operation of the document was driven here.
 */

const doc = parse(readFileSync(path.join(ROOT, DOCUMENT_FILES.public), 'utf8')) as Record<string, any>;
const validator = new ResponseValidator(doc);
const driven = new Map<string, Set<number>>();

const checkAgainstDocument: Middleware = {
  async onResponse({ request, response, schemaPath }) {
    const key = `${request.method} ${schemaPath}`;
    (driven.get(key) ?? driven.set(key, new Set()).get(key)!).add(response.status);
    const headers = Object.fromEntries(response.headers.entries());
    const problem = validator.check(request.method, schemaPath, response.status, headers, await response.clone().text());
    if (problem) throw new Error(problem);
    return response;
  },
};

let t: TestApp;
let tenant: Tenant;
let client: Client<paths>;
let sdkClient: Client<paths>;
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

beforeAll(async () => {
  t = await createTestApp();
  tenant = await createTenant(t);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  // The SDKs send Content-Type: application/json on every request (spec §4).
  client = createClient<paths>({ baseUrl: base, headers: { 'Content-Type': 'application/json' } });
  // The document's second server: the same paths under /api.
  sdkClient = createClient<paths>({ baseUrl: `${base}/api`, headers: { 'Content-Type': 'application/json' } });
  for (const c of [client, sdkClient]) c.use(checkAgainstDocument);
});
afterAll(() => t.close());

describe('typed client from openapi.yaml, against a listening server', () => {
  it('health probes', async () => {
    const live = await client.GET('/healthz');
    expect(live.data?.status).toBe('ok');
    const ready = await client.GET('/readyz');
    expect(ready.data?.status).toBe('ready');
  });

  it('GET /v1/keys: 200 on both bases, 401 without or with a bad key, 422 out of range', async () => {
    for (const c of [client, sdkClient]) {
      const { data, response } = await c.GET('/v1/keys', { params: { query: { limit: 10, offset: 0 } }, headers: bearer(tenant.serviceKey) });
      expect(response.status).toBe(200);
      expect(data).toEqual({ keys: [], total: 0 });
    }
    const none = await client.GET('/v1/keys');
    expect(none.response.status).toBe(401);
    expect(none.error?.error.code).toBe('unauthorized');
    const wrongTier = await client.GET('/v1/keys', { headers: bearer(tenant.apiKey) });
    expect(wrongTier.error?.error.code).toBe('invalid_api_key');
    const bad = await client.GET('/v1/keys', { params: { query: { limit: 0 } }, headers: bearer(tenant.serviceKey) });
    expect(bad.response.status).toBe(422);
    expect(bad.error?.error.code).toBe('validation_error');
  });

  it('a response that does not match the document fails the check', async () => {
    const { data } = await client.GET('/v1/keys', { headers: bearer(tenant.serviceKey) });
    const wrong = { ...data, total: 'zero' };
    expect(validator.check('GET', '/v1/keys', 200, {}, JSON.stringify(wrong))).toMatch(/total/);
    expect(validator.check('GET', '/v1/keys', 200, {}, JSON.stringify({ ...data, extra: 1 }))).toMatch(/additional/);
    expect(validator.check('GET', '/v1/keys', 418, {}, '{}')).toMatch(/not documented/);
    expect(validator.check('GET', '/readyz', 503, {}, JSON.stringify({ error: { code: 'service_unavailable', message: 'x', details: [] } }))).toMatch(/Retry-After/);
    expect(validator.check('GET', '/v1/keys', 401, {}, JSON.stringify({ error: { code: 'not_found', message: 'x', details: [] } }))).toMatch(/enum|allowed/);
  });

  it('drove every operation of the document, each to its success status', () => {
    const missing: string[] = [];
    for (const [p, item] of Object.entries<Record<string, any>>(doc.paths)) {
      for (const [method, op] of Object.entries<Record<string, any>>(item)) {
        const success = Object.keys(op.responses).filter((s) => s.startsWith('2')).map(Number);
        const seen = driven.get(`${method.toUpperCase()} ${p}`);
        if (!seen || !success.some((s) => seen.has(s))) missing.push(`${method.toUpperCase()} ${p}`);
      }
    }
    expect(missing.join(', '), 'operations this test never drove to success').toBe('');
  });
});

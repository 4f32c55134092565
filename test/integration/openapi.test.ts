import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { parse } from 'yaml';
import { DOCUMENT_FILES, EXAMPLES_FILE, generateDocuments, ROOT } from '../../scripts/openapi.js';
import { ResponseValidator } from '../support/openapi-validator.js';
import { ADMIN_TOKEN, call } from '../support/harness.js';
import { it } from '../support/fixtures.js';

type Json = Record<string, any>;
const committed = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');
const publicDoc = parse(committed(DOCUMENT_FILES.public)) as Json;
const internalDoc = parse(committed(DOCUMENT_FILES.internal)) as Json;

/** The operations whose success is not JSON, and its media type. */
const NON_JSON_SUCCESS: Record<string, string> = { '/metrics': 'text/plain', '/internal/v1/backup': 'application/gzip' };

function operations(doc: Json): { method: string; path: string; op: Json }[] {
  return Object.entries<Json>(doc.paths).flatMap(([p, item]) => Object.entries<Json>(item).map(([method, op]) => ({ method, path: p, op })));
}

describe('the committed documents are what the code generates (drift)', () => {
  it('openapi.yaml, openapi.internal.yaml and the examples match `npm run openapi` byte for byte (the client types: test/unit/typescript-client.test.ts)', async () => {
    const generated = await generateDocuments();
    const stale = (Object.keys(DOCUMENT_FILES) as (keyof typeof DOCUMENT_FILES)[]).filter((k) => generated[k] !== committed(DOCUMENT_FILES[k]));
    expect(stale, 'run `npm run openapi` and commit the result').toEqual([]);
    expect(generated.examples, 'run `npm run openapi`').toBe(committed(EXAMPLES_FILE));
  }, 180_000);

  it('the running apps serve the same documents', async ({ app: t }) => {
    const pub = await call(t.app, 'GET', '/openapi.json');
    expect(pub.status).toBe(200);
    expect(pub.body).toEqual(publicDoc);
    const internal = await call(t.admin, 'GET', '/internal/openapi.json', { token: ADMIN_TOKEN });
    expect(internal.status).toBe(200);
    expect(internal.body).toEqual(internalDoc);
  });
});

describe('serving', () => {
  it('the internal document is only on the admin listener, behind the operator token', async ({ app: t }) => {
    expect((await call(t.admin, 'GET', '/internal/openapi.json')).status).toBe(401);
    expect((await call(t.admin, 'GET', '/internal/openapi.json', { token: 'wrong-token' })).status).toBe(401);
    for (const url of ['/internal/openapi.json', '/internal/v1/openapi.json']) expect((await call(t.app, 'GET', url)).status).toBe(404);
    // and the public listener's document names no internal route
    expect(Object.keys(publicDoc.paths).filter((p) => p.startsWith('/internal'))).toEqual([]);
    expect((await call(t.admin, 'GET', '/docs')).status).toBe(404);
  });

  it('/docs is Swagger UI served from the installed package: no asset from another origin', async ({ app: t }) => {
    const page = await t.app.inject({ method: 'GET', url: '/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(assets.length).toBeGreaterThan(2);
    expect(assets.filter((a) => /^(https?:)?\/\//.test(a))).toEqual([]);
    for (const asset of assets) {
      const url = new URL(asset, 'http://local/docs/').pathname;
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
    const init = await t.app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.body).toContain('validatorUrl: null'); // no call to the public validator service
    const json = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(json.json()).toEqual(publicDoc);
  });
});

describe('what the public document says', () => {
  it('is OpenAPI 3.1 with bearer security, /v1 paths once, and the /api base as a second server', () => {
    expect(publicDoc.openapi).toBe('3.1.0');
    expect(publicDoc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(publicDoc.servers.map((s: Json) => s.url)).toEqual(['/', '/api']);
    expect(publicDoc.info.description).toContain('/api/v1');
    for (const p of Object.keys(publicDoc.paths)) expect(p, p).toMatch(/^\/(v1\/|healthz$|readyz$)/);
  });

  it('documents the four agent envelopes as named error schemas', () => {
    const schemas = publicDoc.components.schemas;
    const named = {
      AgentScopeError: 'agent_scope_error',
      AgentPermissionDeniedError: 'agent_permission_denied',
      AgentCapExceededError: 'agent_cap_exceeded',
      M3FraudBlockError: 'm3_fraud_block',
    };
    for (const [name, code] of Object.entries(named)) expect(schemas[name].properties.error.properties.code.enum, name).toEqual([code]);
    const detail = (name: string) => schemas[name].properties.error.properties.details.items.required;
    expect(detail('AgentScopeError')).toContain('line_id');
    expect(detail('AgentPermissionDeniedError')).toEqual(expect.arrayContaining(['tier', 'verb']));
    expect(detail('AgentCapExceededError')).toEqual(expect.arrayContaining(['spent_cents', 'cap_cents', 'cycle_reset_at']));
  });

  it.each([
    ['public', publicDoc],
    ['internal', internalDoc],
  ])('%s: every operation names and secures itself and lists the error statuses it can produce', (_kind, doc) => {
    for (const { method, path: p, op } of operations(doc)) {
      const where = `${method.toUpperCase()} ${p}`;
      const statuses = Object.keys(op.responses);
      expect(op.operationId, where).toMatch(/^[a-z][A-Za-z0-9]+$/);
      expect(op.summary, where).toBeTruthy();
      expect(statuses.some((s) => s.startsWith('2')), where).toBe(true);
      for (const [status, res] of Object.entries<Json>(op.responses)) {
        // JSON everywhere but the successes that are not: the Prometheus scrape's text, a backup's gzip.
        const other = status === '200' ? NON_JSON_SUCCESS[p] : undefined;
        expect((res.content?.['application/json'] ?? (other ? res.content?.[other] : undefined))?.schema, `${where} ${status}`).toBeDefined();
        expect(res.headers['X-Request-Id'], `${where} ${status}`).toBeDefined();
        if (status === '429' || status === '503') expect(res.headers['Retry-After'], `${where} ${status}`).toBeDefined();
      }
      if (op.security.length > 0) expect(statuses, `${where}: authenticated, so 401`).toContain('401');
      // a body may be sent to any POST, PATCH or DELETE: too large → 413, not JSON → 422
      if (['post', 'patch', 'delete'].includes(method)) expect(statuses, where).toEqual(expect.arrayContaining(['413', '422']));
      if (op.responses['200']?.headers?.RateLimit || op.responses['201']?.headers?.RateLimit) expect(statuses, `${where}: rate-limited`).toContain('429');
      if (p !== '/healthz' && p !== '/metrics') expect(statuses, `${where}: needs the database`).toContain('503');
      expect(statuses, `${where}: an unexpected fault is the generic envelope`).toContain('500');
      if (p.includes('{id}')) expect(statuses, where).toContain('404');
    }
  });

  it.each([
    ['public', publicDoc],
    ['internal', internalDoc],
  ])('%s: examples come from real responses and match their schemas; the main statuses have one', (_kind, doc) => {
    const validator = new ResponseValidator(doc);
    let count = 0;
    for (const { method, path: p, op } of operations(doc)) {
      for (const [status, res] of Object.entries<Json>(op.responses)) {
        const example = res.content['application/json']?.example;
        if (example === undefined) continue;
        count++;
        expect(validator.check(method.toUpperCase(), p, Number(status), null, JSON.stringify(example)), `${method} ${p} ${status}`).toBeNull();
      }
      const success = Object.keys(op.responses).find((s) => s.startsWith('2'))!;
      if (NON_JSON_SUCCESS[p]) continue; // no JSON example
      expect(op.responses[success].content['application/json'].example, `${method.toUpperCase()} ${p} ${success}: no example`).toBeDefined();
    }
    expect(count).toBeGreaterThan(operations(doc).length);
    // stand-ins, never a real-looking secret
    expect(JSON.stringify(doc)).not.toMatch(/sk_(?:svc_)?(?:test|live)_[0-9A-Za-z]{49}|rs_[0-9A-Za-z]{43}/);
  });

  it('every operation and component id is unique and every $ref resolves', () => {
    for (const doc of [publicDoc, internalDoc]) {
      const ids = operations(doc).map((o) => o.op.operationId);
      expect(new Set(ids).size).toBe(ids.length);
      const refs = JSON.stringify(doc).match(/"#\/components\/[^"]+"/g) ?? [];
      for (const ref of new Set(refs)) {
        const [, , section, name] = JSON.parse(ref).split('/');
        expect(doc.components[section]?.[name], ref).toBeDefined();
      }
    }
  });
});

import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import createClient, { type Client, type Middleware } from 'openapi-fetch';
import { describe, expect } from 'vitest';
import { parse } from 'yaml';
import { DOCUMENT_FILES, ROOT } from '../../scripts/openapi.js';
import { it } from '../support/fixtures.js';
import { ADMIN_TOKEN } from '../support/harness.js';
import type { paths } from '../../clients/typescript/src/public.types.js';
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

let client: Client<paths>;
let sdkClient: Client<paths>;
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

it.beforeAll(async ({ app: t }) => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  // The SDKs send Content-Type: application/json on every request (spec §4).
  client = createClient<paths>({ baseUrl: base, headers: { 'Content-Type': 'application/json' } });
  // The document's second server: the same paths under /api.
  sdkClient = createClient<paths>({ baseUrl: `${base}/api`, headers: { 'Content-Type': 'application/json' } });
  for (const c of [client, sdkClient]) c.use(checkAgainstDocument);
});

describe('typed client from openapi.yaml, against a listening server', () => {
  it('health probes', async () => {
    const live = await client.GET('/healthz');
    expect(live.data?.status).toBe('ok');
    const ready = await client.GET('/readyz');
    expect(ready.data?.status).toBe('ready');
  });

  it('GET /v1/keys: 200 on both bases, 401 without or with a bad key, 422 out of range', async ({ tenant }) => {
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

  it('the key lifecycle: mint (and its replay), read, update, rotate, revoke', async ({ tenant }) => {
    const idem = (s: string) => ({ header: { 'Idempotency-Key': `${s}-${Math.random().toString(36).slice(2)}` } });
    const mintParams = idem('mint');
    const minted = await client.POST('/v1/keys', {
      params: mintParams,
      body: { name: 'spec client', agent_label: 'agent:one', permissions: 'call_only', monthly_cap_cents: 5000, self_rotation: true },
      headers: bearer(tenant.serviceKey),
    });
    expect(minted.response.status).toBe(201);
    const key = minted.data!.key;
    expect(key.plaintext_key).toMatch(/^sk_test_/);
    expect(key.rotation_secret).toBeTruthy();
    const replay = await client.POST('/v1/keys', {
      params: mintParams,
      body: { name: 'spec client', agent_label: 'agent:one', permissions: 'call_only', monthly_cap_cents: 5000, self_rotation: true },
      headers: bearer(tenant.serviceKey),
    });
    expect(replay.response.status).toBe(201);
    expect(replay.data!.key.id).toBe(key.id);
    expect(replay.data!.key.plaintext_key).toBeUndefined();
    const reused = await client.POST('/v1/keys', { params: mintParams, body: { name: 'another body' }, headers: bearer(tenant.serviceKey) });
    expect(reused.response.status).toBe(409);
    expect(reused.error?.error.code).toBe('idempotency_key_reused');
    const missing = await client.POST('/v1/keys', { params: { header: {} } as never, body: { name: 'x' }, headers: bearer(tenant.serviceKey) });
    expect(missing.error?.error.code).toBe('missing_idempotency_key');
    const invalid = await client.POST('/v1/keys', { params: idem('bad'), body: { name: '' }, headers: bearer(tenant.serviceKey) });
    expect(invalid.response.status).toBe(422);

    const path = { path: { id: key.id } };
    const read = await sdkClient.GET('/v1/keys/{id}', { params: path, headers: bearer(tenant.serviceKey) });
    expect(read.data?.key).toMatchObject({ id: key.id, name: 'spec client', permissions: 'call_only' });
    const unknown = await client.GET('/v1/keys/{id}', { params: { path: { id: 'not-a-uuid' } }, headers: bearer(tenant.serviceKey) });
    expect(unknown.error?.error.code).toBe('not_found');

    const patched = await client.PATCH('/v1/keys/{id}', { params: path, body: { name: 'renamed', monthly_cap_cents: null }, headers: bearer(tenant.serviceKey) });
    expect(patched.data?.key).toMatchObject({ name: 'renamed', monthly_cap_cents: null });
    const emptyPatch = await client.PATCH('/v1/keys/{id}', { params: path, body: {}, headers: bearer(tenant.serviceKey) });
    expect(emptyPatch.response.status).toBe(422);

    const suspended = await client.POST('/v1/keys/{id}/suspend', { params: path, body: { reason: 'typed client' }, headers: bearer(tenant.serviceKey) });
    expect(suspended.data?.key.suspended_at).toBeTruthy();
    const resumed = await client.POST('/v1/keys/{id}/resume', { params: path, headers: bearer(tenant.serviceKey) });
    expect(resumed.data?.key.suspended_at).toBeNull();

    const secret = await client.POST('/v1/keys/{id}/rotation-secret', { params: { ...path, ...idem('secret') }, headers: bearer(tenant.serviceKey) });
    expect(secret.response.status).toBe(201);
    expect(secret.data?.rotation_secret).toMatch(/^rs_/);
    const rotated = await client.POST('/v1/keys/{id}/rotate', { params: { ...path, ...idem('rotate') }, headers: bearer(tenant.serviceKey) });
    expect(rotated.response.status).toBe(201);
    const successor = rotated.data!.key;
    expect(successor).toMatchObject({ rotated_from: key.id, name: 'renamed' });
    const again = await client.POST('/v1/keys/{id}/rotate', { params: { ...path, ...idem('rotate') }, headers: bearer(tenant.serviceKey) });
    expect(again.response.status).toBe(404);
    const lineage = await client.GET('/v1/keys/{id}/lineage', { params: { path: { id: successor.id } }, headers: bearer(tenant.serviceKey) });
    expect(lineage.data?.keys.map((e) => e.rotated_by)).toEqual([null, 'service_key']);

    const revoked = await client.DELETE('/v1/keys/{id}', { params: { path: { id: successor.id } }, headers: bearer(tenant.serviceKey) });
    expect(revoked.data?.key.revoked_at).toBeTruthy();
    const twice = await client.DELETE('/v1/keys/{id}', { params: { path: { id: successor.id } }, headers: bearer(tenant.serviceKey) });
    expect(twice.error?.error.code).toBe('not_found');
    const listed = await client.GET('/v1/keys', { headers: bearer(tenant.serviceKey) });
    expect(listed.data?.total).toBe(0);
  });

  it('the agent routes: audit feed and self-rotation', async ({ tenant }) => {
    const minted = await client.POST('/v1/keys', {
      params: { header: { 'Idempotency-Key': `agent-${Math.random().toString(36).slice(2)}` } },
      body: { name: 'self-rotating agent', self_rotation: true },
      headers: bearer(tenant.serviceKey),
    });
    const agent = minted.data!.key;
    const feed = await client.GET('/v1/audit', { params: { query: { limit: 10 } }, headers: bearer(agent.plaintext_key!) });
    expect(feed.data?.api_key_id).toBe(agent.id);
    expect(feed.data?.events.length).toBeGreaterThan(0);
    const otherAccount = await client.GET('/v1/audit', { params: { query: { api_key_id: '00000000-0000-4000-8000-000000000000' } }, headers: bearer(agent.plaintext_key!) });
    expect(otherAccount.error?.error.code).toBe('not_found');
    const badQuery = await client.GET('/v1/audit', { params: { query: { event_types: 'nope' } }, headers: bearer(agent.plaintext_key!) });
    expect(badQuery.response.status).toBe(422);
    const rotated = await sdkClient.POST('/v1/agents/self/rotate-key', { body: { rotationSecret: agent.rotation_secret! }, headers: { ...bearer(agent.plaintext_key!) } });
    expect(rotated.data?.agentId).toBe(agent.id);
    const noSecret = await client.POST('/v1/agents/self/rotate-key', { body: {} as never, headers: { ...bearer(rotated.data!.apiKey) } });
    expect(noSecret.response.status).toBe(400);
  });

  it("the agent's own view, its check, and its debits typed as billing_transaction items", async ({ app: t, tenant }) => {
    const minted = await client.POST('/v1/keys', {
      params: { header: { 'Idempotency-Key': `spender-${Math.random().toString(36).slice(2)}` } },
      body: { name: 'spender', monthly_cap_cents: 1000 },
      headers: bearer(tenant.serviceKey),
    });
    const agent = minted.data!.key;
    const key = bearer(agent.plaintext_key!);
    const debit = await t.admin.inject({
      method: 'POST',
      url: '/internal/v1/verify',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      payload: { key: agent.plaintext_key, verb: 'call', cost_cents: 250, request_id: 'typed-1' },
    });
    expect(debit.json().valid).toBe(true);
    const self = await sdkClient.GET('/v1/agents/self', { headers: key });
    expect(self.data?.spend).toMatchObject({ spent_cents: 250, cap_cents: 1000, remaining_cents: 750 });
    const check = await client.POST('/v1/agents/self/check', { body: { verb: 'call', cost_cents: 800 }, headers: key });
    expect(check.data).toMatchObject({ allowed: false, code: 'agent_cap_exceeded' });
    const feed = await sdkClient.GET('/v1/audit', { params: { query: { event_types: 'billing_transaction' } }, headers: key });
    const items = feed.data!.events;
    // The generated types narrow on `type`: data.amount_cents only exists on a billing_transaction.
    const debits = items.flatMap((e) => (e.type === 'billing_transaction' ? [e.data.amount_cents] : []));
    expect(debits).toEqual([-250]);
    const filtered = await client.GET('/v1/audit', { params: { query: { exclude: 'audit_read,agent_self_read' } }, headers: key });
    expect(filtered.data?.events.map((e) => (e.type === 'compliance_event' ? e.data.event_type : e.type))).toEqual(['billing_transaction', 'agent_key_created']);
  });

  it('delegation: a key delegated, listed with its budget, revoked; the parent sees its reservation', async ({ tenant }) => {
    const minted = await client.POST('/v1/keys', {
      params: { header: { 'Idempotency-Key': `orchestrator-${Math.random().toString(36).slice(2)}` } },
      body: { name: 'orchestrator', monthly_cap_cents: 5000, can_delegate: true },
      headers: bearer(tenant.serviceKey),
    });
    const key = bearer(minted.data!.key.plaintext_key!);
    const body = { name: 'tool', permissions: 'call_only' as const, budget_cents: 500, ttl_seconds: 3600 };
    const delegated = await sdkClient.POST('/v1/agents/self/keys', { params: { header: { 'Idempotency-Key': 'typed-delegate-1' } }, body, headers: key });
    expect(delegated.response.status).toBe(201);
    expect(delegated.data?.delegation).toMatchObject({ parent_key_id: minted.data!.key.id, depth: 1, budget_cents: 500 });
    expect(delegated.data?.key.plaintext_key).toMatch(/^sk_test_/);
    const self = await client.GET('/v1/agents/self', { headers: key });
    expect(self.data?.delegation).toMatchObject({ can_delegate: true, depth: 0, reserved_cents: 500, available_cents: 4500 });
    const list = await client.GET('/v1/agents/self/keys', { params: { query: { depth: 'all' } }, headers: key });
    expect(list.data?.keys.map((k) => [k.id, k.delegation.spent_cents])).toEqual([[delegated.data!.key.id, 0]]);
    const revoked = await sdkClient.DELETE('/v1/agents/self/keys/{id}', { params: { path: { id: delegated.data!.key.id } }, headers: key });
    expect(revoked.data?.key.revoked_at).not.toBeNull();
    const gone = await client.DELETE('/v1/agents/self/keys/{id}', { params: { path: { id: minted.data!.key.id } }, headers: key });
    expect(gone.error?.error.code).toBe('not_found');
  });

  it('a response that does not match the document fails the check', async ({ tenant }) => {
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

import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { ADMIN_TOKEN, recordSecrets } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/**
 * A client that behaves like the Saperly TypeScript SDK on the wire: base path {baseUrl}/api/v1,
 * Content-Type: application/json on EVERY request (GET, DELETE and the body-less rotate POST too),
 * snake_case bodies, and `body.key` read from every single-key response.
 */
class SaperlyLikeClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
  ) {}

  private async request(method: string, path: string, body?: unknown, idempotencyKey?: string) {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.apiKey}`, 'Content-Type': 'application/json' };
    if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
    const res = await fetch(`${this.baseUrl}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    recordSecrets(text);
    const json = JSON.parse(text);
    if (!res.ok) throw Object.assign(new Error(json.error.message), { status: res.status, code: json.error.code });
    return json;
  }

  keys = {
    create: async (params: Record<string, unknown>, opts: { idempotencyKey: string }) =>
      (await this.request('POST', '/keys', params, opts.idempotencyKey)).key,
    list: async (params: { limit?: number; offset?: number } = {}) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) q.set(k, String(v));
      return this.request('GET', `/keys${q.size ? `?${q}` : ''}`);
    },
    retrieve: async (id: string) => (await this.request('GET', `/keys/${id}`)).key,
    update: async (id: string, params: Record<string, unknown>) => (await this.request('PATCH', `/keys/${id}`, params)).key,
    revoke: async (id: string) => (await this.request('DELETE', `/keys/${id}`)).key,
    // The SDK sends the body-less rotate with Content-Type: application/json and no body at all.
    rotate: async (id: string, opts: { idempotencyKey: string }) => (await this.request('POST', `/keys/${id}/rotate`, undefined, opts.idempotencyKey)).key,
  };

  // The SDK's audit call: GET /api/v1/audit with its query, the body's `events` returned.
  audit = {
    list: async (params: { api_key_id?: string; limit?: number; event_types?: string[] } = {}) => {
      const q = new URLSearchParams();
      if (params.api_key_id) q.set('api_key_id', params.api_key_id);
      if (params.limit) q.set('limit', String(params.limit));
      if (params.event_types) q.set('event_types', params.event_types.join(','));
      return (await this.request('GET', `/audit${q.size ? `?${q}` : ''}`)) as { events: { type: string; created_at: string; data: Record<string, unknown> }[] };
    },
  };
}

/** How Saperly's MCP server prints a billing item: by data.transaction_type and data.amount_cents. */
const mcpLine = (e: { type: string; data: Record<string, unknown> }) =>
  e.type === 'billing_transaction' ? `${String(e.data.transaction_type)}: ${(Number(e.data.amount_cents) / 100).toFixed(2)} USD` : String(e.data.event_type);

let client: SaperlyLikeClient;
let baseUrl: string;
it.beforeAll(async ({ app: t, tenant }) => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  client = new SaperlyLikeClient(baseUrl, tenant.serviceKey);
});

describe('the Saperly SDK wire behaviour, end to end over HTTP', () => {
  it('mints, lists, retrieves, updates, rotates and revokes', async () => {
    const created = await client.keys.create(
      { name: 'sdk agent', agent_label: 'sdk.1', permissions: 'call_only', monthly_cap_cents: 2500 },
      { idempotencyKey: `sdk-${Math.random()}` },
    );
    expect(created.plaintext_key).toMatch(/^sk_test_/);
    expect(created.permissions).toBe('call_only');

    const listed = await client.keys.list({ limit: 10 });
    expect(listed.total).toBe(1);
    expect(listed.keys[0].id).toBe(created.id);

    expect((await client.keys.retrieve(created.id)).name).toBe('sdk agent');
    expect((await client.keys.update(created.id, { monthly_cap_cents: null })).monthly_cap_cents).toBeNull();

    const rotated = await client.keys.rotate(created.id, { idempotencyKey: `sdk-rot-${created.id}` });
    expect(rotated.rotated_from).toBe(created.id);
    expect(rotated.plaintext_key).toMatch(/^sk_test_/);

    const revoked = await client.keys.revoke(rotated.id);
    expect(revoked.revoked_at).not.toBeNull();
    expect((await client.keys.list()).total).toBe(0);
    await expect(client.keys.revoke(rotated.id)).rejects.toMatchObject({ status: 404, code: 'not_found' });
  });

  it("the audit call with an agent's key: billing_transaction items in Saperly's shape beside the compliance events", async ({ app: t }) => {
    const created = await client.keys.create({ name: 'spender', monthly_cap_cents: 1000 }, { idempotencyKey: `sdk-spend-${Math.random()}` });
    const debit = await t.admin.inject({
      method: 'POST',
      url: '/internal/v1/verify',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      payload: { key: created.plaintext_key, verb: 'call', cost_cents: 125, request_id: 'sdk-call-1' },
    });
    expect(debit.json().valid).toBe(true);
    const agent = new SaperlyLikeClient(baseUrl, created.plaintext_key);
    const all = await agent.audit.list({ limit: 10 });
    expect(all.events.map(mcpLine)).toEqual(['usage_debit: -1.25 USD', 'agent_key_created']);
    const billing = await agent.audit.list({ event_types: ['billing_transaction'] });
    expect(billing.events).toHaveLength(1);
    expect(billing.events[0]!.data).toMatchObject({ amount_cents: -125, request_id: 'sdk-call-1', api_key_id: created.id });
  });

  it('a retried create with the same Idempotency-Key returns the same key without its secret', async () => {
    const idem = `sdk-retry-${Math.random()}`;
    const a = await client.keys.create({ name: 'retry' }, { idempotencyKey: idem });
    const b = await client.keys.create({ name: 'retry' }, { idempotencyKey: idem });
    expect(b.id).toBe(a.id);
    expect(b.plaintext_key).toBeUndefined();
  });
});

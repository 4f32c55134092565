import type { AddressInfo } from 'node:net';
import { describe, expect } from 'vitest';
import { recordSecrets } from '../support/harness.js';
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
}

let client: SaperlyLikeClient;
it.beforeAll(async ({ app: t, tenant }) => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  client = new SaperlyLikeClient(`http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`, tenant.serviceKey);
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

  it('a retried create with the same Idempotency-Key returns the same key without its secret', async () => {
    const idem = `sdk-retry-${Math.random()}`;
    const a = await client.keys.create({ name: 'retry' }, { idempotencyKey: idem });
    const b = await client.keys.create({ name: 'retry' }, { idempotencyKey: idem });
    expect(b.id).toBe(a.id);
    expect(b.plaintext_key).toBeUndefined();
  });
});

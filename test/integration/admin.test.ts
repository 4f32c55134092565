import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN, call, errorCode, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
it.beforeAll(({ app }) => {
  t = app;
});

const admin = (method: string, url: string, body?: unknown) => call(t.admin, method, url, { token: ADMIN_TOKEN, body });

async function eventTypes(accountId: string): Promise<string[]> {
  const rows = await t.database.db
    .select({ type: complianceEvents.eventType, seq: complianceEvents.seq })
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId)))
    .orderBy(complianceEvents.seq);
  return rows.map((r) => r.type);
}

describe('portal internal API (spec §9)', () => {
  it('requires the operator token, compared in constant time', async () => {
    expect((await call(t.admin, 'POST', '/internal/v1/accounts', { body: { name: 'a' } })).status).toBe(401);
    const wrong = await call(t.admin, 'POST', '/internal/v1/accounts', { token: `${ADMIN_TOKEN}x`, body: { name: 'a' } });
    expect(wrong.status).toBe(401);
    expect(errorCode(wrong)).toBe('invalid_api_key');
  });

  it('is not served on the public listener', async () => {
    const res = await call(t.app, 'POST', '/internal/v1/accounts', { token: ADMIN_TOKEN, body: { name: 'a' } });
    expect(res.status).toBe(404);
  });

  it('creates an account and service keys, lists, rotates and revokes them, recording each event', async () => {
    const acc = await admin('POST', '/internal/v1/accounts', { name: 'Acme' });
    expect(acc.status).toBe(201);
    const accountId = acc.body.account.id;

    const live = await admin('POST', `/internal/v1/accounts/${accountId}/service-keys`, { environment: 'live', name: 'prod' });
    expect(live.status).toBe(201);
    const key = live.body.service_key;
    expect(key.plaintext_key).toMatch(/^sk_svc_live_/);
    expect(key.key_prefix).toBe(key.plaintext_key.slice(0, 20));
    expect(key.environment).toBe('live');

    const list = await admin('GET', `/internal/v1/accounts/${accountId}/service-keys`);
    expect(list.status).toBe(200);
    expect(list.body.service_keys).toHaveLength(1);
    expect(list.body.service_keys[0].plaintext_key).toBeUndefined();

    const rotated = await admin('POST', `/internal/v1/service-keys/${key.id}/rotate`);
    expect(rotated.status).toBe(201);
    expect(rotated.body.service_key.rotated_from).toBe(key.id);
    expect(rotated.body.service_key.plaintext_key).toMatch(/^sk_svc_live_/);
    expect((await admin('POST', `/internal/v1/service-keys/${key.id}/rotate`)).status).toBe(404);

    const revoked = await admin('DELETE', `/internal/v1/service-keys/${rotated.body.service_key.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.service_key.revoked_at).not.toBeNull();
    expect((await admin('DELETE', `/internal/v1/service-keys/${rotated.body.service_key.id}`)).status).toBe(404);

    expect(await eventTypes(accountId)).toEqual([
      'account_created',
      'service_key_created',
      'service_key_rotated',
      'service_key_revoked',
    ]);
  });

  it('creates and revokes portal API keys (legacy_full)', async () => {
    const acc = await admin('POST', '/internal/v1/accounts', { name: 'Portal' });
    const accountId = acc.body.account.id;
    const created = await admin('POST', `/internal/v1/accounts/${accountId}/api-keys`, { environment: 'test' });
    expect(created.status).toBe(201);
    expect(created.body.api_key.permissions).toBe('legacy_full');
    expect(created.body.api_key.plaintext_key).toMatch(/^sk_test_/);
    expect(created.body.api_key.created_by_service_key_id).toBeNull();
    const revoked = await admin('DELETE', `/internal/v1/api-keys/${created.body.api_key.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.api_key.revoked_at).not.toBeNull();
    expect(await eventTypes(accountId)).toEqual(['account_created', 'portal_key_created', 'portal_key_revoked']);
  });

  it('bootstrap returns a ready-to-use account, service key and API key', async () => {
    const res = await admin('POST', '/internal/v1/bootstrap');
    expect(res.status).toBe(201);
    expect(res.body.environment).toBe('test');
    expect(res.body.service_key).toMatch(/^sk_svc_test_/);
    expect(res.body.api_key).toMatch(/^sk_test_/);
    const list = await call(t.app, 'GET', '/api/v1/keys', { token: res.body.service_key });
    expect(list.body).toEqual({ keys: [], total: 0 });
  });

  it('unknown ids → 404; malformed input → 422', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await admin('POST', `/internal/v1/accounts/${missing}/service-keys`, {})).status).toBe(404);
    expect((await admin('DELETE', `/internal/v1/api-keys/${missing}`)).status).toBe(404);
    expect((await admin('POST', '/internal/v1/accounts', { name: '' })).status).toBe(422);
    expect((await admin('POST', '/internal/v1/accounts', { name: 'a\u0000b' })).status).toBe(422);
    expect((await admin('POST', '/internal/v1/accounts', { name: 'a', extra: 1 })).status).toBe(422);
    // A credential pasted into a name would be stored and echoed in plaintext (found by the fuzzer).
    const pasted = await admin('POST', '/internal/v1/accounts', { name: `sk_svc_test_${'A'.repeat(49)}` });
    expect(pasted.status).toBe(422);
    expect(pasted.raw).not.toContain('A'.repeat(49));
    const badEnv = await admin('POST', `/internal/v1/accounts/${missing}/service-keys`, { environment: 'prod' });
    expect(badEnv.status).toBe(422);
    expect(errorCode(badEnv)).toBe('validation_error');
  });
});

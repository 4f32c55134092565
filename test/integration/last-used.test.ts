import { expect } from 'vitest';
import { LAST_USED_RESOLUTION_MS } from '../../src/domain/auth/last-used.js';
import { mintChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, createTenant } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * last_used_at records every use of a key, not only verifications: an API key's audit reads, a
 * service key's requests. At most one write per second per key, as verify does.
 */

it("an API key's audit reads set its last_used_at, at most once per second", async ({ app: t }) => {
  const tenant = await createTenant(t);
  const k = await mintChild(t, tenant, { name: 'reader' });
  const lastUsed = async () => (await call(t.app, 'GET', `/v1/keys/${k.id}`, { token: tenant.serviceKey })).body.key.last_used_at as string | null;
  expect(await lastUsed()).toBeNull();
  t.clock.freeze();
  try {
    expect((await call(t.app, 'GET', '/v1/audit', { token: k.plaintext })).status).toBe(200);
    const first = await lastUsed();
    expect(first).toBe(t.clock.now().toISOString());
    t.clock.advance(LAST_USED_RESOLUTION_MS - 1);
    expect((await call(t.app, 'GET', '/v1/audit', { token: k.plaintext })).status).toBe(200);
    expect(await lastUsed()).toBe(first);
    t.clock.advance(2);
    expect((await call(t.app, 'GET', '/v1/audit', { token: k.plaintext })).status).toBe(200);
    expect(await lastUsed()).toBe(t.clock.now().toISOString());
  } finally {
    t.clock.unfreeze();
  }
});

it("a service key's requests set its last_used_at, reads served from the row cache included", async ({ app: t }) => {
  const tenant = await createTenant(t);
  const serviceKey = async () => {
    const res = await call(t.admin, 'GET', `/internal/v1/accounts/${tenant.accountId}/service-keys`, { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    const key = (res.body.service_keys as { id: string; last_used_at: string | null }[]).find((k) => k.id === tenant.serviceKeyId)!;
    return key.last_used_at;
  };
  expect(await serviceKey()).toBeNull();
  t.clock.freeze();
  try {
    expect((await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    const first = await serviceKey();
    expect(first).toBe(t.clock.now().toISOString());
    // Within the second: no write, also for the read served from the cache.
    t.clock.advance(500);
    expect((await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expect(await serviceKey()).toBe(first);
    // A second later, a cached read writes it again.
    t.clock.advance(LAST_USED_RESOLUTION_MS);
    expect((await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expect(await serviceKey()).toBe(t.clock.now().toISOString());
  } finally {
    t.clock.unfreeze();
  }
});

it('a replayed debit is a use and refreshes last_used_at; the same request_id with another cost (409) is not', async ({ app: t }) => {
  const tenant = await createTenant(t);
  const k = await mintChild(t, tenant, { name: 'payer' });
  const verify = (body: unknown) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
  const lastUsed = async () => (await call(t.app, 'GET', `/v1/keys/${k.id}`, { token: tenant.serviceKey })).body.key.last_used_at as string | null;
  t.clock.freeze();
  try {
    const body = { key: k.plaintext, verb: 'call', cost_cents: 3, request_id: 'paid-once' };
    expect((await verify(body)).body.debit).toMatchObject({ replayed: false });
    const debitedAt = t.clock.now().toISOString();
    expect(await lastUsed()).toBe(debitedAt);
    t.clock.advance(LAST_USED_RESOLUTION_MS + 1);
    expect((await verify({ ...body, cost_cents: 4 })).status).toBe(409);
    expect(await lastUsed()).toBe(debitedAt);
    const retry = await verify(body);
    expect(retry.body).toMatchObject({ valid: true, debit: { replayed: true }, key: { last_used_at: t.clock.now().toISOString() } });
    expect(await lastUsed()).toBe(t.clock.now().toISOString());
  } finally {
    t.clock.unfreeze();
  }
});

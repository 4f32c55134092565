import { describe, expect } from 'vitest';
import { SERVICE_KEY_READ_GRACE_MS } from '../../src/domain/auth/auth.service.js';
import { addServiceKey, ADMIN_TOKEN, call, createTenant, errorCode, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Rotating a service key hands its fleet to the successor (migration 0012): every key of a rotation
 * chain manages the child keys that any key of the chain minted. Before, the successor saw none of
 * them, and once the old key's read grace ended nothing could manage them.
 */

let t: TestApp;
it.beforeAll(({ app }) => {
  t = app;
});

let n = 0;
const idem = () => ({ 'idempotency-key': `skrot-${++n}-${Math.random()}` });
const mint = (token: string, name: string) => call(t.app, 'POST', '/v1/keys', { token, body: { name }, headers: idem() });
const rotateServiceKey = async (id: string) => {
  const res = await call(t.admin, 'POST', `/internal/v1/service-keys/${id}/rotate`, { token: ADMIN_TOKEN });
  expect(res.status).toBe(201);
  return { id: res.body.service_key.id as string, token: res.body.service_key.plaintext_key as string };
};
const list = async (token: string) => {
  const res = await call(t.app, 'GET', '/v1/keys?limit=100', { token });
  expect(res.status).toBe(200);
  return { ids: (res.body.keys as { id: string }[]).map((k) => k.id).sort(), total: res.body.total as number };
};

describe('service-key rotation', () => {
  it("the successor manages every child key its predecessors minted: list, get, update, rotate, revoke", async () => {
    const tenant = await createTenant(t);
    const a = (await mint(tenant.serviceKey, 'minted by A')).body.key;
    const gone = (await mint(tenant.serviceKey, 'revoked by A')).body.key;
    expect((await call(t.app, 'DELETE', `/v1/keys/${gone.id}`, { token: tenant.serviceKey })).status).toBe(200);

    const b = await rotateServiceKey(tenant.serviceKeyId);
    expect(await list(b.token)).toEqual({ ids: [a.id], total: 1 });
    // Revoked children too, as GET answers them.
    expect((await call(t.app, 'GET', `/v1/keys/${gone.id}`, { token: b.token })).body.key.revoked_at).not.toBeNull();
    const patched = await call(t.app, 'PATCH', `/v1/keys/${a.id}`, { token: b.token, body: { name: 'renamed by B' } });
    expect(patched.status).toBe(200);
    expect(patched.body.key.name).toBe('renamed by B');

    // B's own mints belong to the same fleet; created_by_service_key_id names the chain's first key.
    const fromB = (await mint(b.token, 'minted by B')).body.key;
    expect(fromB.created_by_service_key_id).toBe(tenant.serviceKeyId);
    expect(a.created_by_service_key_id).toBe(tenant.serviceKeyId);

    // A, rotated away, still reads the whole fleet during its grace, and may not write.
    expect(await list(tenant.serviceKey)).toEqual({ ids: [a.id, fromB.id].sort(), total: 2 });
    expect((await mint(tenant.serviceKey, 'too late')).status).toBe(401);

    // A second rotation: C manages all of it, and rotates and revokes A's key.
    const c = await rotateServiceKey(b.id);
    expect(await list(c.token)).toEqual({ ids: [a.id, fromB.id].sort(), total: 2 });
    const rotated = await call(t.app, 'POST', `/v1/keys/${a.id}/rotate`, { token: c.token, headers: idem() });
    expect(rotated.status).toBe(201);
    expect(rotated.body.key.rotated_from).toBe(a.id);
    expect((await call(t.app, 'DELETE', `/v1/keys/${fromB.id}`, { token: c.token })).status).toBe(200);
    expect(await list(c.token)).toEqual({ ids: [rotated.body.key.id], total: 1 });

    // After the grace the old keys are refused outright, and the fleet is still C's.
    t.clock.advance(SERVICE_KEY_READ_GRACE_MS + 1_000);
    expect(errorCode(await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey }))).toBe('invalid_api_key');
    expect(errorCode(await call(t.app, 'GET', '/v1/keys', { token: b.token }))).toBe('invalid_api_key');
    expect(await list(c.token)).toEqual({ ids: [rotated.body.key.id], total: 1 });
  });

  it('another service key of the same account, not of the chain, still sees none of them', async () => {
    const tenant = await createTenant(t);
    const a = (await mint(tenant.serviceKey, 'chain')).body.key;
    const b = await rotateServiceKey(tenant.serviceKeyId);
    const other = await addServiceKey(t, tenant.accountId);
    const mine = (await mint(other.serviceKey, 'other fleet')).body.key;
    expect(await list(other.serviceKey)).toEqual({ ids: [mine.id], total: 1 });
    expect(errorCode(await call(t.app, 'GET', `/v1/keys/${a.id}`, { token: other.serviceKey }))).toBe('not_found');
    expect(errorCode(await call(t.app, 'GET', `/v1/keys/${mine.id}`, { token: b.token }))).toBe('not_found');
    expect(await list(b.token)).toEqual({ ids: [a.id], total: 1 });
  });
});

import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { addServiceKey, call, createTenant, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
let n = 0;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const KEY_FIELDS = [
  'id', 'key_prefix', 'environment', 'name', 'agent_label', 'line_id', 'permissions', 'monthly_cap_cents',
  'monthly_spend_cents', 'created_at', 'revoked_at', 'last_used_at', 'rotated_from', 'created_by_service_key_id',
  // keyplane's extensions, after Saperly's 14.
  'expires_at', 'suspended_at', 'can_delegate', 'parent_key_id',
].sort();

const mint = (token: string, body: unknown, idem = `mint-${++n}-${Math.random()}`) =>
  call(t.app, 'POST', '/v1/keys', { token, body, headers: { 'idempotency-key': idem } });

async function events(accountId: string, type: string) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.eventType, type)));
}

describe('POST /v1/keys (mint)', () => {
  it('201 with the 14 fields plus plaintext_key once, inheriting the service key environment', async () => {
    const res = await mint(tenant.serviceKey, { name: 'agent one', agent_label: 'fleet:a.1', permissions: 'call_only', monthly_cap_cents: 5000 });
    expect(res.status).toBe(201);
    const key = res.body.key;
    expect(Object.keys(key).filter((k) => k !== 'plaintext_key').sort()).toEqual(KEY_FIELDS);
    expect(key.plaintext_key).toMatch(/^sk_test_[0-9A-Za-z]{49}$/);
    expect(key.key_prefix).toBe(key.plaintext_key.slice(0, 16));
    expect(key).toMatchObject({
      environment: 'test', name: 'agent one', agent_label: 'fleet:a.1', line_id: null, permissions: 'call_only',
      monthly_cap_cents: 5000, monthly_spend_cents: 0, revoked_at: null, last_used_at: null, rotated_from: null,
      created_by_service_key_id: tenant.serviceKeyId,
    });
    expect(key.rotation_secret).toBeUndefined();
    expect(new Date(key.created_at).toISOString()).toBe(key.created_at);
    const got = await call(t.app, 'GET', `/v1/keys/${key.id}`, { token: tenant.serviceKey });
    expect(got.body.key.plaintext_key).toBeUndefined();
    expect((await events(tenant.accountId, 'agent_key_created')).some((e) => e.subjectKeyId === key.id)).toBe(true);
  });

  it('defaults: permissions full, no cap, self_rotation false; self_rotation true adds rotation_secret once', async () => {
    const plain = await mint(tenant.serviceKey, { name: 'defaults' });
    expect(plain.body.key).toMatchObject({ permissions: 'full', monthly_cap_cents: null, agent_label: null });
    const sr = await mint(tenant.serviceKey, { name: 'self', self_rotation: true, line_id: '11111111-1111-4111-8111-111111111111' });
    expect(sr.status).toBe(201);
    expect(sr.body.key.rotation_secret).toMatch(/^rs_[0-9A-Za-z]{43}$/);
    expect(sr.body.key.line_id).toBe('11111111-1111-4111-8111-111111111111');
  });

  it('a line_id sent in upper case is answered, stored and recorded in its canonical lower case', async () => {
    const upper = '7B0C5A52-3F0E-4A57-9D0C-7B1C2D3E4F50';
    const minted = await mint(tenant.serviceKey, { name: 'lined', line_id: upper });
    expect(minted.status).toBe(201);
    expect(minted.body.key.line_id).toBe(upper.toLowerCase());
    const got = await call(t.app, 'GET', `/v1/keys/${minted.body.key.id}`, { token: tenant.serviceKey });
    expect(got.body.key.line_id).toBe(upper.toLowerCase());
    const other = 'AAAAAAAA-3F0E-4A57-9D0C-7B1C2D3E4F50';
    const patched = await call(t.app, 'PATCH', `/v1/keys/${minted.body.key.id}`, { token: tenant.serviceKey, body: { line_id: other } });
    expect(patched.body.key.line_id).toBe(other.toLowerCase());
    const created = (await events(tenant.accountId, 'agent_key_created')).find((e) => e.subjectKeyId === minted.body.key.id)!;
    expect(JSON.stringify(created.data)).not.toContain(upper);
  });

  it('a live service key mints live keys; environment must match the service key', async () => {
    const live = await createTenant(t, 'live');
    const ok = await mint(live.serviceKey, { name: 'l', environment: 'live' });
    expect(ok.status).toBe(201);
    expect(ok.body.key.plaintext_key).toMatch(/^sk_live_/);
    const bad = await mint(live.serviceKey, { name: 'l', environment: 'test' });
    expect(bad.status).toBe(422);
    expect(bad.body.error.details[0].field).toBe('environment');
  });

  it.each([
    ['missing name', {}],
    ['empty name', { name: '' }],
    ['long name', { name: 'x'.repeat(129) }],
    ['NUL in name', { name: 'a\u0000b' }],
    ['control char in name', { name: 'a\nb' }],
    ['bad agent_label', { name: 'a', agent_label: 'Upper' }],
    ['agent_label leading dash', { name: 'a', agent_label: '-x' }],
    ['bad line_id', { name: 'a', line_id: 'nope' }],
    ['legacy_full', { name: 'a', permissions: 'legacy_full' }],
    ['unknown permission', { name: 'a', permissions: 'admin' }],
    ['zero cap', { name: 'a', monthly_cap_cents: 0 }],
    ['fractional cap', { name: 'a', monthly_cap_cents: 1.5 }],
    ['huge cap', { name: 'a', monthly_cap_cents: 100_000_001 }],
    ['string cap', { name: 'a', monthly_cap_cents: '100' }],
    ['self_rotation not boolean', { name: 'a', self_rotation: 'yes' }],
    ['bad environment', { name: 'a', environment: 'prod' }],
    ['unknown field', { name: 'a', owner: 'me' }],
    ['a service key pasted into name', { name: `key sk_svc_test_${'A'.repeat(49)}` }],
    ['an API key as agent_label', { name: 'a', agent_label: `sk_live_${'a1'.repeat(24)}b` }],
    ['a rotation secret in name', { name: `rs_${'Z'.repeat(43)}` }],
    ['array body', [1, 2]],
  ])('422 validation_error: %s', async (_name, body) => {
    const res = await mint(tenant.serviceKey, body);
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
  });

  it('a monthly cap of exactly 100,000,000 and null are accepted', async () => {
    expect((await mint(tenant.serviceKey, { name: 'max', monthly_cap_cents: 100_000_000 })).status).toBe(201);
    expect((await mint(tenant.serviceKey, { name: 'none', monthly_cap_cents: null })).status).toBe(201);
  });
});

describe('GET /v1/keys (list)', () => {
  it('newest first, ties by id, revoked excluded, total counts the filter, each list read recorded', async () => {
    const own = await createTenant(t);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await mint(own.serviceKey, { name: `k${i}` })).body.key.id);
      t.clock.advance(1000);
    }
    await call(t.app, 'DELETE', `/v1/keys/${ids[1]}`, { token: own.serviceKey });
    const page = await call(t.app, 'GET', '/v1/keys?limit=2&offset=1', { token: own.serviceKey });
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(4);
    expect(page.body.keys.map((k: { id: string }) => k.id)).toEqual([ids[3], ids[2]]);
    const all = await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
    expect(all.body.keys.map((k: { id: string }) => k.id)).toEqual([ids[4], ids[3], ids[2], ids[0]]);
    const reads = await events(own.accountId, 'service_key_list_read');
    expect(reads).toHaveLength(2);
    expect(reads.map((r) => (r.data as { count: number }).count).sort()).toEqual([2, 4]);
  });

  it('ties on created_at are broken by id, descending', async () => {
    const own = await createTenant(t);
    const ids = [];
    t.clock.freeze();
    try {
      for (let i = 0; i < 4; i++) ids.push((await mint(own.serviceKey, { name: `same${i}` })).body.key.id);
    } finally {
      t.clock.unfreeze();
    }
    const res = await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
    expect(res.body.keys.map((k: { id: string }) => k.id)).toEqual([...ids].sort().reverse());
  });

  it('a service key sees only the keys it minted', async () => {
    const own = await createTenant(t);
    const other = await addServiceKey(t, own.accountId);
    await mint(own.serviceKey, { name: 'mine' });
    const res = await call(t.app, 'GET', '/v1/keys', { token: other.serviceKey });
    expect(res.body).toEqual({ keys: [], total: 0 });
  });
});

describe('GET/PATCH/DELETE /v1/keys/{id}', () => {
  it('another service key, another account, unknown or non-uuid ids → 404, never 403', async () => {
    const key = (await mint(tenant.serviceKey, { name: 'private' })).body.key;
    const sibling = await addServiceKey(t, tenant.accountId);
    const stranger = await createTenant(t);
    for (const [token, id] of [
      [sibling.serviceKey, key.id],
      [stranger.serviceKey, key.id],
      [tenant.serviceKey, '00000000-0000-4000-8000-000000000000'],
      [tenant.serviceKey, 'not-a-uuid'],
      [tenant.serviceKey, '..%2F..%2Fetc'],
    ] as const) {
      for (const [method, url, body] of [
        ['GET', `/v1/keys/${id}`, undefined],
        ['PATCH', `/v1/keys/${id}`, { name: 'x' }],
        ['DELETE', `/v1/keys/${id}`, undefined],
      ] as const) {
        const res = await call(t.app, method, url, { token, body });
        expect(res.status, `${method} ${url}`).toBe(404);
        expect(errorCode(res)).toBe('not_found');
      }
    }
  });

  it('PATCH changes given fields, null clears, records the changed field names', async () => {
    const key = (await mint(tenant.serviceKey, { name: 'p', agent_label: 'a', monthly_cap_cents: 10, line_id: '22222222-2222-4222-8222-222222222222' })).body.key;
    const res = await call(t.app, 'PATCH', `/api/v1/keys/${key.id}`, {
      token: tenant.serviceKey,
      body: { name: 'renamed', agent_label: null, line_id: null, monthly_cap_cents: null, permissions: 'read_only' },
    });
    expect(res.status).toBe(200);
    expect(res.body.key).toMatchObject({ name: 'renamed', agent_label: null, line_id: null, monthly_cap_cents: null, permissions: 'read_only' });
    const ev = (await events(tenant.accountId, 'agent_key_updated')).find((e) => e.subjectKeyId === key.id)!;
    expect((ev.data as { changed_fields: string[] }).changed_fields.sort()).toEqual(['agent_label', 'line_id', 'monthly_cap_cents', 'name', 'permissions']);
  });

  it('PATCH needs at least one valid field', async () => {
    const key = (await mint(tenant.serviceKey, { name: 'p2' })).body.key;
    for (const body of [{}, { name: null }, { permissions: 'legacy_full' }, { permissions: null }, { bogus: 1 }, { name: 'x', created_at: 'now' }]) {
      const res = await call(t.app, 'PATCH', `/v1/keys/${key.id}`, { token: tenant.serviceKey, body });
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
  });

  it('DELETE soft-revokes: 200 with revoked_at, still readable, second DELETE / PATCH / rotate → 404', async () => {
    const key = (await mint(tenant.serviceKey, { name: 'gone' })).body.key;
    const del = await call(t.app, 'DELETE', `/v1/keys/${key.id}`, { token: tenant.serviceKey });
    expect(del.status).toBe(200);
    expect(del.body.key.revoked_at).not.toBeNull();
    const got = await call(t.app, 'GET', `/v1/keys/${key.id}`, { token: tenant.serviceKey });
    expect(got.status).toBe(200);
    expect(got.body.key.revoked_at).toBe(del.body.key.revoked_at);
    expect((await call(t.app, 'DELETE', `/v1/keys/${key.id}`, { token: tenant.serviceKey })).status).toBe(404);
    expect((await call(t.app, 'PATCH', `/v1/keys/${key.id}`, { token: tenant.serviceKey, body: { name: 'x' } })).status).toBe(404);
    const rot = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `r-${key.id}` } });
    expect(rot.status).toBe(404);
    expect((await events(tenant.accountId, 'agent_key_revoked')).filter((e) => e.subjectKeyId === key.id)).toHaveLength(1);
  });

  it('a revoked service key cannot write even within its read grace', async () => {
    const own = await createTenant(t);
    const { ADMIN_TOKEN } = await import('../support/harness.js');
    await call(t.admin, 'DELETE', `/internal/v1/service-keys/${own.serviceKeyId}`, { token: ADMIN_TOKEN });
    const write = await mint(own.serviceKey, { name: 'x' });
    expect(write.status).toBe(401);
    expect(errorCode(write)).toBe('invalid_api_key');
    expect((await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey })).status).toBe(200);
  });
});

describe('mint and rotate answer exactly what they stored', () => {
  const secretFree = (key: Record<string, unknown>) => {
    const { plaintext_key: _p, rotation_secret: _r, ...rest } = key;
    return rest;
  };

  it('the response of a mint and of a rotation equals the key read back, and its replay, field for field', async () => {
    const idem = `stored-${Math.random()}`;
    const minted = await mint(tenant.serviceKey, {
      name: 'stored "as" answered', agent_label: 'fleet:stored.1', line_id: '44444444-4444-4444-8444-444444444444', permissions: 'read_only',
      monthly_cap_cents: 123, self_rotation: true,
    }, `${idem}-mint`);
    expect(minted.status).toBe(201);
    const got = await call(t.app, 'GET', `/v1/keys/${minted.body.key.id}`, { token: tenant.serviceKey });
    expect(got.body.key).toEqual(secretFree(minted.body.key));
    const mintReplay = await mint(tenant.serviceKey, {
      name: 'stored "as" answered', agent_label: 'fleet:stored.1', line_id: '44444444-4444-4444-8444-444444444444', permissions: 'read_only',
      monthly_cap_cents: 123, self_rotation: true,
    }, `${idem}-mint`);
    expect(mintReplay.headers['idempotent-replayed']).toBe('true');
    expect(mintReplay.body.key).toEqual(got.body.key);

    const rotated = await call(t.app, 'POST', `/v1/keys/${minted.body.key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `${idem}-rotate` } });
    expect(rotated.status).toBe(201);
    // The agent's secret carries over: the successor's first answer has none to show.
    expect(rotated.body.key).not.toHaveProperty('rotation_secret');
    const successor = await call(t.app, 'GET', `/v1/keys/${rotated.body.key.id}`, { token: tenant.serviceKey });
    expect(successor.body.key).toEqual(secretFree(rotated.body.key));
    const rotateReplay = await call(t.app, 'POST', `/v1/keys/${minted.body.key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `${idem}-rotate` } });
    expect(rotateReplay.status).toBe(201);
    expect(rotateReplay.headers['idempotent-replayed']).toBe('true');
    expect(rotateReplay.body.key).toEqual(successor.body.key);
  });
});

describe('POST /v1/keys/{id}/rotate', () => {
  it('201 with a successor that inherits settings, rotated_from = old id; the old key is revoked', async () => {
    const old = (await mint(tenant.serviceKey, {
      name: 'rot', agent_label: 'r.1', line_id: '33333333-3333-4333-8333-333333333333', permissions: 'sms_only', monthly_cap_cents: 700, self_rotation: true,
    })).body.key;
    const res = await call(t.app, 'POST', `/v1/keys/${old.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `rot-${old.id}` } });
    expect(res.status).toBe(201);
    const next = res.body.key;
    expect(next).toMatchObject({
      name: 'rot', agent_label: 'r.1', line_id: '33333333-3333-4333-8333-333333333333', permissions: 'sms_only',
      monthly_cap_cents: 700, rotated_from: old.id, revoked_at: null, created_by_service_key_id: tenant.serviceKeyId,
    });
    expect(next.plaintext_key).toMatch(/^sk_test_/);
    expect(next.plaintext_key).not.toBe(old.plaintext_key);
    // A self-rotating key keeps its agent's rotation secret (the event says so); none is answered.
    expect(next).not.toHaveProperty('rotation_secret');
    const oldNow = await call(t.app, 'GET', `/v1/keys/${old.id}`, { token: tenant.serviceKey });
    expect(oldNow.body.key.revoked_at).not.toBeNull();
    const ev = (await events(tenant.accountId, 'agent_key_rotated')).find((e) => e.subjectKeyId === old.id)!;
    expect(ev.relatedKeyId).toBe(next.id);
    expect(ev.data).toMatchObject({ rotation_secret: 'kept' });
  });

  it('a key minted without self_rotation gets no rotation secret on rotation', async () => {
    const old = (await mint(tenant.serviceKey, { name: 'plain-rot' })).body.key;
    const res = await call(t.app, 'POST', `/v1/keys/${old.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `p-${old.id}` } });
    expect(res.status).toBe(201);
    expect(res.body.key.rotation_secret).toBeUndefined();
  });

  it('accepts an empty body or {} with Content-Type: application/json; rejects a body with fields', async () => {
    for (const payload of ['', '{}']) {
      const k = (await mint(tenant.serviceKey, { name: 'rb' })).body.key;
      const res = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: tenant.serviceKey, payload, headers: { 'idempotency-key': `e-${k.id}` } });
      expect(res.status, JSON.stringify(payload)).toBe(201);
    }
    const k = (await mint(tenant.serviceKey, { name: 'rb2' })).body.key;
    const bad = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: tenant.serviceKey, body: { name: 'x' }, headers: { 'idempotency-key': `b-${k.id}` } });
    expect(bad.status).toBe(422);
  });
});

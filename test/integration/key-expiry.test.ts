import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { recordExpiries } from '../../src/domain/keys/expiry.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, storeOf, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Key expiry (issue 29): mint's expires_at / ttl_seconds, PATCH, the successor's inherited expiry,
 * the boundary on public routes and verify (with the injectable clock, frozen), the lists, and
 * agent_key_expired written once.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const DAY_MS = 24 * 3600 * 1000;
const mint = (body: Record<string, unknown>, serviceKey = tenant.serviceKey) =>
  call(t.app, 'POST', '/v1/keys', { token: serviceKey, body: { name: 'expiring', ...body }, headers: { 'idempotency-key': randomUUID() } });
const verify = (body: Record<string, unknown>) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
const auditWith = (apiKey: string) => call(t.app, 'GET', '/v1/audit?api_key_id=self', { token: apiKey });

async function expiredEvents(accountId: string, keyId: string) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.eventType, 'agent_key_expired'), eq(complianceEvents.subjectKeyId, keyId)));
}

describe('mint and PATCH take an expiry', () => {
  it('ttl_seconds sets expires_at from the mint; expires_at is kept as given', async () => {
    const now = t.clock.now().getTime();
    const byTtl = await mint({ ttl_seconds: 3600 });
    expect(byTtl.status).toBe(201);
    expect(Date.parse(byTtl.body.key.expires_at) - Date.parse(byTtl.body.key.created_at)).toBe(3_600_000);
    expect(byTtl.body.key.suspended_at).toBeNull();
    const at = new Date(now + 2 * DAY_MS).toISOString();
    const byTime = await mint({ expires_at: at });
    expect(byTime.body.key.expires_at).toBe(at);
    const none = await mint({});
    expect(none.body.key.expires_at).toBeNull();
  });

  it('refuses both fields, a past or far expiry, and a ttl out of range (422)', async () => {
    const now = t.clock.now().getTime();
    const cases = [
      { ttl_seconds: 3600, expires_at: new Date(now + DAY_MS).toISOString() },
      { expires_at: new Date(now - 1000).toISOString() },
      { expires_at: new Date(now + 401 * DAY_MS).toISOString() },
      { ttl_seconds: 59 },
      { ttl_seconds: 34_560_001 },
      { expires_at: 'tomorrow' },
    ];
    for (const body of cases) {
      const res = await mint(body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
  });

  it('PATCH sets a future expiry, refuses the past (422) and clears with null', async () => {
    const k = (await mint({})).body.key;
    const patch = (expires_at: string | null) => call(t.app, 'PATCH', `/v1/keys/${k.id}`, { token: tenant.serviceKey, body: { expires_at } });
    const past = await patch(new Date(t.clock.now().getTime() - 1).toISOString());
    expect(past.status).toBe(422);
    expect(errorCode(past)).toBe('validation_error');
    const later = new Date(t.clock.now().getTime() + DAY_MS).toISOString();
    expect((await patch(later)).body.key.expires_at).toBe(later);
    expect((await patch(null)).body.key.expires_at).toBeNull();
  });

  it("a rotation's successor inherits the expiry and never outlives its predecessor", async () => {
    const k = (await mint({ ttl_seconds: 7200 })).body.key;
    const res = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': randomUUID() } });
    expect(res.status).toBe(201);
    expect(res.body.key.rotated_from).toBe(k.id);
    expect(res.body.key.expires_at).toBe(k.expires_at);
  });
});

describe('the expiry boundary', () => {
  it('works one millisecond before expires_at and is refused at it: public routes 401 as revoked, verify reason expired', async () => {
    t.clock.freeze();
    try {
      const k = (await mint({ ttl_seconds: 60 })).body.key;
      t.clock.advance(59_999);
      expect((await auditWith(k.plaintext_key)).status).toBe(200);
      expect((await verify({ key: k.plaintext_key, verb: 'call' })).body.valid).toBe(true);
      expect((await verify({ key: k.plaintext_key, verb: 'call', cost_cents: 5, request_id: 'before' })).body.valid).toBe(true);

      t.clock.advance(1);
      const refused = await auditWith(k.plaintext_key);
      expect(refused.status).toBe(401);
      expect(refused.body).toEqual({ error: { code: 'invalid_api_key', message: 'The API key is invalid or has been revoked.', details: [] } });
      for (const body of [{ verb: 'call' }, { verb: 'call', cost_cents: 5, request_id: 'after' }]) {
        const v = await verify({ key: k.plaintext_key, ...body });
        expect(v.body).toEqual({
          valid: false,
          code: 'invalid_api_key',
          status: 401,
          error: { error: { code: 'invalid_api_key', message: 'The API key is invalid or has been revoked.', details: [] } },
          reason: 'expired',
        });
      }
      // Gone to its service key, as a revoked key is: PATCH and rotate are 404; GET still reads it.
      expect((await call(t.app, 'PATCH', `/v1/keys/${k.id}`, { token: tenant.serviceKey, body: { name: 'x' } })).status).toBe(404);
      const rotate = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': randomUUID() } });
      expect(rotate.status).toBe(404);
      expect((await call(t.app, 'GET', `/v1/keys/${k.id}`, { token: tenant.serviceKey })).body.key.expires_at).toBe(k.expires_at);
    } finally {
      t.clock.unfreeze();
    }
  });

  it('lists leave expired keys out, and the total agrees before and after the expiry is recorded', async () => {
    const own = await createTenant(t);
    const list = () => call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
    const expiring = (await mint({ ttl_seconds: 60 }, own.serviceKey)).body.key;
    const kept = (await mint({}, own.serviceKey)).body.key;
    expect((await list()).body.total).toBe(2);
    t.clock.advance(60_000);
    const after = (await list()).body;
    expect(after.keys.map((k: { id: string }) => k.id)).toEqual([kept.id]);
    expect(after.total).toBe(1);
    expect(await recordExpiries(t.store, t.clock.now())).toBeGreaterThanOrEqual(1);
    expect((await list()).body.total).toBe(1);
    expect(await expiredEvents(own.accountId, expiring.id)).toHaveLength(1);
  });
});

describe('agent_key_expired', () => {
  it('is written exactly once per key by two instances sweeping at once, and never again', async () => {
    const own = await createTenant(t);
    const keys = await Promise.all([1, 2, 3].map(() => mint({ ttl_seconds: 60 }, own.serviceKey)));
    const now = new Date(t.clock.now().getTime() + 60_000);
    // Two sweepers with linkers of their own, as two processes have.
    const [a, b] = [storeOf(t.database), storeOf(t.database)];
    await Promise.all([recordExpiries(a, now), recordExpiries(b, now), recordExpiries(a, now), recordExpiries(b, now)]);
    await recordExpiries(b, new Date(now.getTime() + 60_000));
    for (const k of keys) {
      const events = await expiredEvents(own.accountId, k.body.key.id);
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toEqual({ key_prefix: k.body.key.key_prefix, expires_at: k.body.key.expires_at });
    }
  });

  it('is not written for a key revoked before its expiry', async () => {
    const own = await createTenant(t);
    const k = (await mint({ ttl_seconds: 60 }, own.serviceKey)).body.key;
    expect((await call(t.app, 'DELETE', `/v1/keys/${k.id}`, { token: own.serviceKey })).status).toBe(200);
    await recordExpiries(t.store, new Date(t.clock.now().getTime() + 120_000));
    expect(await expiredEvents(own.accountId, k.id)).toHaveLength(0);
  });
});

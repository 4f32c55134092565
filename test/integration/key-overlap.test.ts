import { randomUUID } from 'node:crypto';
import { and, eq, isNull, or, gt, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Rotation with an overlap window (issue 29): both keys work until the overlap ends, as one agent
 * (the newest key's settings, one spend); at most two live keys per chain; DELETE semantics; the
 * self-rotation's overlapSeconds.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

type Key = { id: string; plaintext_key: string; revoked_at: string | null; expires_at: string | null; monthly_spend_cents: number; rotation_secret?: string };
const mint = async (body: Record<string, unknown> = {}, serviceKey = tenant.serviceKey): Promise<Key> =>
  (await call(t.app, 'POST', '/v1/keys', { token: serviceKey, body: { name: 'rolling', ...body }, headers: { 'idempotency-key': randomUUID() } })).body.key;
const rotate = (id: string, body?: unknown, serviceKey = tenant.serviceKey) =>
  call(t.app, 'POST', `/v1/keys/${id}/rotate`, { token: serviceKey, body, headers: { 'idempotency-key': randomUUID() } });
const get = async (id: string): Promise<Key> => (await call(t.app, 'GET', `/v1/keys/${id}`, { token: tenant.serviceKey })).body.key;
const verify = (key: string, extra: Record<string, unknown> = {}) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call', ...extra } });
const works = async (key: string) => (await verify(key)).body.valid === true && (await call(t.app, 'GET', '/v1/audit?api_key_id=self', { token: key })).status === 200;

/** Keys of an agent that authenticate at `now`: unrevoked, or revoked_at ahead (overlap). */
async function liveKeysOfAgent(agentId: string, now: Date) {
  return t.database.db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(and(eq(apiKeys.agentId, agentId), or(isNull(apiKeys.revokedAt), gt(apiKeys.revokedAt, now))));
}

describe('POST /v1/keys/{id}/rotate with overlap_seconds', () => {
  it('both keys authenticate and verify; the old one reads as rotated with revoked_at at the end of the overlap', async () => {
    const old = await mint();
    const res = await rotate(old.id, { overlap_seconds: 3600 });
    expect(res.status).toBe(201);
    const next = res.body.key as Key;
    expect(await works(old.plaintext_key)).toBe(true);
    expect(await works(next.plaintext_key)).toBe(true);
    const oldNow = await get(old.id);
    expect(Date.parse(oldNow.revoked_at!) - t.clock.now().getTime()).toBeGreaterThan(3_500_000);
    // The old key is no longer its service key's to change: 404, as a rotated key.
    expect((await call(t.app, 'PATCH', `/v1/keys/${old.id}`, { token: tenant.serviceKey, body: { name: 'x' } })).status).toBe(404);
    expect((await rotate(old.id)).status).toBe(404);
    const [event] = await t.database.db
      .select()
      .from(complianceEvents)
      .where(and(eq(complianceEvents.eventType, 'agent_key_rotated'), eq(complianceEvents.subjectKeyId, old.id)));
    expect(event!.data).toMatchObject({ new_key_id: next.id, overlap_seconds: 3600, overlap_ends_at: oldNow.revoked_at });
  });

  it('the old key stops at the end of the overlap (one millisecond before: works; at it: refused)', async () => {
    t.clock.freeze();
    try {
      const old = await mint();
      const next = (await rotate(old.id, { overlap_seconds: 60 })).body.key as Key;
      t.clock.advance(59_999);
      expect(await works(old.plaintext_key)).toBe(true);
      expect((await verify(old.plaintext_key, { cost_cents: 1, request_id: `b-${old.id}` })).body.valid).toBe(true);
      t.clock.advance(1);
      expect(await works(old.plaintext_key)).toBe(false);
      const v = await verify(old.plaintext_key, { cost_cents: 1, request_id: `a-${old.id}` });
      expect(v.body).toMatchObject({ valid: false, code: 'invalid_api_key' });
      expect(v.body.reason).toBeUndefined();
      expect(await works(next.plaintext_key)).toBe(true);
    } finally {
      t.clock.unfreeze();
    }
  });

  it('never past the old key’s expiry; overlap_seconds out of range is 422; 0 stops the old key at once', async () => {
    const expiring = await mint({ ttl_seconds: 600 });
    await rotate(expiring.id, { overlap_seconds: 3600 });
    expect((await get(expiring.id)).revoked_at).toBe(expiring.expires_at);
    const k = await mint();
    expect((await rotate(k.id, { overlap_seconds: 604_801 })).status).toBe(422);
    expect((await rotate(k.id, { overlap_seconds: -1 })).status).toBe(422);
    expect((await rotate(k.id, { overlap_seconds: 0 })).status).toBe(201);
    expect(await works(k.plaintext_key)).toBe(false);
  });

  it('100 concurrent 10-cent debits split over the two keys against a 500-cent cap: exactly 50 succeed', async () => {
    const old = await mint({ monthly_cap_cents: 500 });
    const next = (await rotate(old.id, { overlap_seconds: 3600 })).body.key as Key;
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => verify(i % 2 ? old.plaintext_key : next.plaintext_key, { cost_cents: 10, request_id: `split-${old.id}-${i}` })),
    );
    const valid = answers.filter((a) => a.body.valid).length;
    expect(valid).toBe(50);
    expect(answers.filter((a) => a.body.code === 'agent_cap_exceeded')).toHaveLength(50);
    expect((await get(next.id)).monthly_spend_cents).toBe(500);
    const [sum] = await t.database.db.execute<{ total: string }>(
      sql`select coalesce(sum(cost_cents), 0)::text as total from spend_ledger where api_key_id in (${old.id}, ${next.id})`,
    ).then((r) => (r as unknown as { rows: { total: string }[] }).rows);
    expect(Number(sum!.total)).toBe(500);
    // A request_id debited through one key is a replay through the other.
    const first = answers.findIndex((a) => a.body.valid);
    const again = await verify(first % 2 ? next.plaintext_key : old.plaintext_key, { cost_cents: 10, request_id: `split-${old.id}-${first}` });
    expect(again.body.debit).toMatchObject({ replayed: true });
  });

  it('the newest key’s settings (PATCH, suspension) apply to the old key while the overlap runs', async () => {
    const old = await mint();
    const next = (await rotate(old.id, { overlap_seconds: 3600 })).body.key as Key;
    await call(t.app, 'PATCH', `/v1/keys/${next.id}`, { token: tenant.serviceKey, body: { permissions: 'sms_only' } });
    // A change of the newest key's own secret is its own: nothing of it to apply to the old key.
    expect((await call(t.app, 'PATCH', `/v1/keys/${next.id}`, { token: tenant.serviceKey, body: { self_rotation: false } })).status).toBe(200);
    expect((await verify(old.plaintext_key)).body.code).toBe('agent_permission_denied');
    await call(t.app, 'POST', `/v1/keys/${next.id}/suspend`, { token: tenant.serviceKey });
    expect((await verify(old.plaintext_key, { verb: 'sms' })).body.reason).toBe('suspended');
    await call(t.app, 'POST', `/v1/keys/${next.id}/resume`, { token: tenant.serviceKey });
    expect((await verify(old.plaintext_key, { verb: 'sms' })).body.valid).toBe(true);
  });
});

describe('at most two live keys per chain, and DELETE', () => {
  it('rotating the newest key during an overlap ends the older overlap at once', async () => {
    const a = await mint();
    const b = (await rotate(a.id, { overlap_seconds: 3600 })).body.key as Key;
    const c = (await rotate(b.id, { overlap_seconds: 3600 })).body.key as Key;
    expect(await works(a.plaintext_key)).toBe(false);
    expect(await works(b.plaintext_key)).toBe(true);
    expect(await works(c.plaintext_key)).toBe(true);
    expect(await liveKeysOfAgent(a.id, t.clock.now())).toHaveLength(2);
  });

  it('DELETE of the old key ends its overlap now; DELETE of the newest revokes both', async () => {
    const a = await mint();
    const b = (await rotate(a.id, { overlap_seconds: 3600 })).body.key as Key;
    const del = await call(t.app, 'DELETE', `/v1/keys/${a.id}`, { token: tenant.serviceKey });
    expect(del.status).toBe(200);
    expect(Date.parse(del.body.key.revoked_at)).toBeLessThanOrEqual(t.clock.now().getTime());
    expect(await works(a.plaintext_key)).toBe(false);
    expect(await works(b.plaintext_key)).toBe(true);
    expect((await call(t.app, 'DELETE', `/v1/keys/${a.id}`, { token: tenant.serviceKey })).status).toBe(404);

    const c = await mint();
    const d = (await rotate(c.id, { overlap_seconds: 3600 })).body.key as Key;
    expect((await call(t.app, 'DELETE', `/v1/keys/${d.id}`, { token: tenant.serviceKey })).status).toBe(200);
    expect(await works(c.plaintext_key)).toBe(false);
    expect(await works(d.plaintext_key)).toBe(false);
    expect(await liveKeysOfAgent(c.id, t.clock.now())).toHaveLength(0);
  });

  it('the operator stops an overlapping key: revoke-leaked of the old key, DELETE of the newest (both)', async () => {
    const a = await mint();
    const b = (await rotate(a.id, { overlap_seconds: 3600 })).body.key as Key;
    const leaked = await call(t.admin, 'POST', '/internal/v1/keys/revoke-leaked', { token: ADMIN_TOKEN, body: { tokens: [a.plaintext_key] } });
    expect(leaked.body.results[0]).toMatchObject({ found: true, revoked: true, key_id: a.id });
    expect(await works(a.plaintext_key)).toBe(false);
    expect(await works(b.plaintext_key)).toBe(true);

    const c = await mint();
    const d = (await rotate(c.id, { overlap_seconds: 3600 })).body.key as Key;
    const killed = await call(t.admin, 'DELETE', `/internal/v1/keys/${d.id}`, { token: ADMIN_TOKEN });
    expect(killed.body.revoked).toBe(true);
    expect(await works(c.plaintext_key)).toBe(false);
    expect(await works(d.plaintext_key)).toBe(false);
  });

  it('lists show only the newest key of an overlapping pair', async () => {
    const own = await createTenant(t);
    const a = await mint({}, own.serviceKey);
    const b = (await rotate(a.id, { overlap_seconds: 3600 }, own.serviceKey)).body.key as Key;
    const list = (await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey })).body;
    expect(list.keys.map((k: Key) => k.id)).toEqual([b.id]);
    expect(list.total).toBe(1);
  });
});

describe('self-rotation with overlapSeconds', () => {
  const selfRotate = (key: Key, body: Record<string, unknown>) =>
    call(t.app, 'POST', '/v1/agents/self/rotate-key', { token: key.plaintext_key, body: { rotationSecret: key.rotation_secret, ...body } });

  it('with overlapSeconds the old key keeps working; without, it stops at once; over 3600 is 422', async () => {
    const withOverlap = await mint({ self_rotation: true });
    const rotated = await selfRotate(withOverlap, { overlapSeconds: 600 });
    expect(rotated.status).toBe(200);
    expect(await works(withOverlap.plaintext_key)).toBe(true);
    expect(await works(rotated.body.apiKey)).toBe(true);

    const without = await mint({ self_rotation: true });
    const plain = await selfRotate(without, {});
    expect(plain.status).toBe(200);
    expect(await works(without.plaintext_key)).toBe(false);
    expect(await works(plain.body.apiKey)).toBe(true);

    const tooLong = await mint({ self_rotation: true });
    const refused = await selfRotate(tooLong, { overlapSeconds: 3601 });
    expect(refused.status).toBe(422);
    expect(errorCode(refused)).toBe('validation_error');
    expect(await works(tooLong.plaintext_key)).toBe(true);
  });
});

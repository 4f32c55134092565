import { randomUUID } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Suspension (issue 29): POST /v1/keys/{id}/suspend and /resume, what a suspended key is answered
 * everywhere, and the events.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const mint = (body: Record<string, unknown> = {}) =>
  call(t.app, 'POST', '/v1/keys', { token: tenant.serviceKey, body: { name: 'pausable', ...body }, headers: { 'idempotency-key': randomUUID() } });
const suspend = (id: string, body?: unknown) => call(t.app, 'POST', `/v1/keys/${id}/suspend`, { token: tenant.serviceKey, body });
const resume = (id: string) => call(t.app, 'POST', `/v1/keys/${id}/resume`, { token: tenant.serviceKey });
const verify = (body: Record<string, unknown>) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
const auditWith = (apiKey: string) => call(t.app, 'GET', '/v1/audit?api_key_id=self', { token: apiKey });

async function eventsOf(keyId: string, type: string) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, tenant.accountId), eq(complianceEvents.eventType, type), eq(complianceEvents.subjectKeyId, keyId)));
}

describe('POST /v1/keys/{id}/suspend and /resume', () => {
  it('a suspended key is refused on the next request and accepted again on the next after resume', async () => {
    const k = (await mint()).body.key;
    const s = await suspend(k.id, { reason: 'misbehaving' });
    expect(s.status).toBe(200);
    expect(s.body.key.suspended_at).not.toBeNull();
    expect(s.body.key.revoked_at).toBeNull();

    const refused = await auditWith(k.plaintext_key);
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toBe('The API key is invalid or has been revoked.');
    for (const body of [{ verb: 'call' }, { verb: 'call', cost_cents: 3, request_id: `s-${k.id}` }]) {
      const v = await verify({ key: k.plaintext_key, ...body });
      expect(v.body).toMatchObject({ valid: false, code: 'invalid_api_key', status: 401, reason: 'suspended' });
      expect(v.body.key).toBeUndefined();
    }

    const r = await resume(k.id);
    expect(r.status).toBe(200);
    expect(r.body.key.suspended_at).toBeNull();
    expect((await auditWith(k.plaintext_key)).status).toBe(200);
    const v = await verify({ key: k.plaintext_key, verb: 'call', cost_cents: 3, request_id: `r-${k.id}` });
    expect(v.body.valid).toBe(true);
    expect(v.body.reason).toBeUndefined();

    const [suspended] = await eventsOf(k.id, 'agent_key_suspended');
    expect(suspended!.data).toEqual({ key_prefix: k.key_prefix, reason: 'misbehaving' });
    expect(await eventsOf(k.id, 'agent_key_resumed')).toHaveLength(1);
  });

  it('suspending a suspended key (or resuming a live one) changes nothing and records nothing', async () => {
    const k = (await mint()).body.key;
    expect((await resume(k.id)).body.key.suspended_at).toBeNull();
    const first = (await suspend(k.id)).body.key.suspended_at;
    t.clock.advance(1000);
    expect((await suspend(k.id)).body.key.suspended_at).toBe(first);
    expect(await eventsOf(k.id, 'agent_key_suspended')).toHaveLength(1);
    expect(await eventsOf(k.id, 'agent_key_resumed')).toHaveLength(0);
  });

  it('PATCH and DELETE work on a suspended key; rotate is 409 key_suspended; it stays in the list', async () => {
    const k = (await mint()).body.key;
    await suspend(k.id);
    const listed = await call(t.app, 'GET', '/v1/keys?limit=100', { token: tenant.serviceKey });
    expect(listed.body.keys.map((x: { id: string }) => x.id)).toContain(k.id);
    const rotate = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': randomUUID() } });
    expect(rotate.status).toBe(409);
    expect(errorCode(rotate)).toBe('key_suspended');
    const patched = await call(t.app, 'PATCH', `/v1/keys/${k.id}`, { token: tenant.serviceKey, body: { name: 'still paused' } });
    expect(patched.status).toBe(200);
    expect(patched.body.key).toMatchObject({ name: 'still paused', suspended_at: expect.any(String) });
    const deleted = await call(t.app, 'DELETE', `/v1/keys/${k.id}`, { token: tenant.serviceKey });
    expect(deleted.status).toBe(200);
    expect(deleted.body.key.revoked_at).not.toBeNull();
    // A revoked key is gone: neither suspend nor resume finds it.
    expect((await resume(k.id)).status).toBe(404);
    expect((await suspend(k.id)).status).toBe(404);
  });

  it('self-rotation of a suspended key is 403 agent_suspended, and works after resume', async () => {
    const k = (await mint({ self_rotation: true })).body.key;
    const selfRotate = () => call(t.app, 'POST', '/v1/agents/self/rotate-key', { token: k.plaintext_key, body: { rotationSecret: k.rotation_secret } });
    await suspend(k.id);
    const refused = await selfRotate();
    expect(refused.status).toBe(403);
    expect(errorCode(refused)).toBe('agent_suspended');
    await resume(k.id);
    const ok = await selfRotate();
    expect(ok.status).toBe(200);
  });

  it('refuses an unknown field or an over-long reason (422), and an id that is not a key (404)', async () => {
    const k = (await mint()).body.key;
    expect((await suspend(k.id, { reason: 'x'.repeat(501) })).status).toBe(422);
    expect((await suspend(k.id, { why: 'x' })).status).toBe(422);
    expect((await suspend(randomUUID())).status).toBe(404);
    expect((await resume('not-a-uuid')).status).toBe(404);
  });
});

import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { signIn } from '../support/console.js';
import { mintChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, createTenant, recordSecrets, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * The key lifecycle of issue 29 in the console: each status's badge and filter, and the key page's
 * actions (suspend, resume, rotate with an overlap, revoke as leaked), each checked against verify
 * and the compliance events it must write.
 */

const plaintextOf = (body: string) => /<code id="plaintext">([^<]+)<\/code>/.exec(body)?.[1];
const badgeOf = (body: string) => /id="key-status"><span class="badge badge-([a-z]+)"/.exec(body)?.[1];
const verify = (t: TestApp, key: string) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call' } });

async function eventsOf(t: TestApp, keyId: string, type: string) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.subjectKeyId, keyId), eq(complianceEvents.eventType, type)));
}

describe('console key lifecycle', () => {
  it('suspend (with a reason) and resume: verify refuses, then accepts; the events name the operator', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const key = await mintChild(t, tenant);
    expect((await verify(t, key.plaintext)).body.valid).toBe(true);
    const suspended = await c.post(`/console/keys/${key.id}/suspend`, { _csrf: c.csrf, reason: 'runaway loop' });
    expect(suspended.status).toBe(303);
    const refused = await verify(t, key.plaintext);
    expect(refused.body.valid).toBe(false);
    expect(refused.body.reason).toBe('suspended');
    const page = await c.get(`/console/keys/${key.id}`);
    expect(badgeOf(page.body)).toBe('suspended');
    expect(page.body).toContain(`action="/console/keys/${key.id}/resume"`);
    expect(page.body).not.toContain(`action="/console/keys/${key.id}/rotate"`);
    const [event] = await eventsOf(t, key.id, 'agent_key_suspended');
    expect(event!.data).toMatchObject({ reason: 'runaway loop' });
    expect(event!.actorKind).toBe('portal');
    expect((await c.post(`/console/keys/${key.id}/resume`, { _csrf: c.csrf })).status).toBe(303);
    expect((await verify(t, key.plaintext)).body.valid).toBe(true);
    expect(badgeOf((await c.get(`/console/keys/${key.id}`)).body)).toBe('live');
    expect(await eventsOf(t, key.id, 'agent_key_resumed')).toHaveLength(1);
  });

  it('rotate with an overlap: the successor is shown once, both keys verify, the lineage says portal', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const key = await mintChild(t, tenant);
    expect((await c.post(`/console/keys/${key.id}/rotate`, { _csrf: c.csrf, overlap_seconds: '604801' })).status).toBe(422);
    const rotated = await c.post(`/console/keys/${key.id}/rotate`, { _csrf: c.csrf, overlap_seconds: '3600' });
    expect(rotated.status).toBe(201);
    const successor = plaintextOf(rotated.body)!;
    recordSecrets(successor);
    expect(rotated.body).toContain('you will not see this again');
    expect(rotated.body).toContain('keeps working until');
    expect((await verify(t, key.plaintext)).body.valid).toBe(true);
    expect((await verify(t, successor)).body.valid).toBe(true);
    const oldPage = await c.get(`/console/keys/${key.id}`);
    expect(badgeOf(oldPage.body)).toBe('overlapping');
    expect(oldPage.body).toContain('by an operator');
    expect(oldPage.body).not.toContain(successor);
    const [event] = await eventsOf(t, key.id, 'agent_key_rotated');
    expect(event!.actorKind).toBe('portal');
    expect(event!.data).toMatchObject({ overlap_seconds: 3600 });
    const lineage = await call(t.app, 'GET', `/v1/keys/${key.id}/lineage`, { token: tenant.serviceKey });
    expect(lineage.status).toBe(200);
    expect(lineage.body.keys.map((k: { rotated_by: string | null }) => k.rotated_by)).toEqual([null, 'portal']);
    t.clock.advance(3600_000);
    expect((await verify(t, key.plaintext)).body.valid).toBe(false);
    expect((await verify(t, successor)).body.valid).toBe(true);
    // A new session: the hour passed is longer than the console's idle timeout.
    const again = await signIn(t.admin);
    expect(badgeOf((await again.get(`/console/keys/${key.id}`)).body)).toBe('revoked');
  });

  it('rotate refuses a suspended key (409), a portal key and a service key (422), and changes nothing', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const key = await mintChild(t, tenant);
    await c.post(`/console/keys/${key.id}/suspend`, { _csrf: c.csrf });
    const suspended = await c.post(`/console/keys/${key.id}/rotate`, { _csrf: c.csrf, overlap_seconds: '0' });
    expect(suspended.status).toBe(409);
    expect(suspended.body).toContain('Could not do that');
    const issued = await c.post(`/console/accounts/${tenant.accountId}/portal-keys`, { _csrf: c.csrf, name: 'dash', environment: 'test' });
    recordSecrets(plaintextOf(issued.body)!);
    const portal = (await t.services.operatorKeys.list(tenant.accountId, { status: 'active', kind: 'portal', limit: 100 })).keys[0]!;
    expect((await c.post(`/console/keys/${portal.id}/rotate`, { _csrf: c.csrf, overlap_seconds: '0' })).status).toBe(422);
    expect((await c.post(`/console/keys/${tenant.serviceKeyId}/rotate`, { _csrf: c.csrf, overlap_seconds: '0' })).status).toBe(422);
    expect(await eventsOf(t, key.id, 'agent_key_rotated')).toHaveLength(0);
    expect((await t.services.operatorKeys.get(portal.id)).status).toBe('active');
  });

  it('a rotation by the service key still reads service_key in the lineage', async ({ app: t }) => {
    const tenant = await createTenant(t);
    const key = await mintChild(t, tenant);
    const rotated = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': crypto.randomUUID() } });
    expect(rotated.status).toBe(201);
    const lineage = await call(t.app, 'GET', `/v1/keys/${key.id}/lineage`, { token: tenant.serviceKey });
    expect(lineage.body.keys.map((k: { rotated_by: string | null }) => k.rotated_by)).toEqual([null, 'service_key']);
  });

  it('revoke as leaked on the key page: verify refuses it, the event says leaked', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const key = await mintChild(t, tenant);
    expect((await c.post(`/console/keys/${key.id}/revoke-leaked`, { _csrf: c.csrf })).status).toBe(303);
    expect((await verify(t, key.plaintext)).body.valid).toBe(false);
    const [event] = await eventsOf(t, key.id, 'agent_key_revoked');
    expect(event!.data).toMatchObject({ reason: 'leaked' });
    expect(event!.actorKind).toBe('portal');
    const page = await c.get(`/console/keys/${key.id}`);
    expect(badgeOf(page.body)).toBe('revoked');
    expect(page.body).not.toContain(`action="/console/keys/${key.id}/revoke-leaked"`);
    // Again: answered as it is, nothing more recorded.
    expect((await c.post(`/console/keys/${key.id}/revoke-leaked`, { _csrf: c.csrf })).status).toBe(303);
    expect(await eventsOf(t, key.id, 'agent_key_revoked')).toHaveLength(1);
  });

  it('the internal API offers the same: POST /internal/v1/keys/{id}/rotate and /revoke-leaked', async ({ app: t, tenant }) => {
    const key = await mintChild(t, tenant);
    const rotated = await call(t.admin, 'POST', `/internal/v1/keys/${key.id}/rotate`, { token: ADMIN_TOKEN, body: { overlap_seconds: 600 } });
    expect(rotated.status).toBe(201);
    recordSecrets(rotated.body.key.plaintext_key);
    expect(rotated.body.rotated.id).toBe(key.id);
    const overlapEnd = new Date(rotated.body.rotated.revoked_at).getTime() - t.clock.now().getTime();
    expect(overlapEnd).toBeGreaterThan(590_000);
    expect(overlapEnd).toBeLessThanOrEqual(600_000);
    expect((await verify(t, key.plaintext)).body.valid).toBe(true);
    expect((await verify(t, rotated.body.key.plaintext_key)).body.valid).toBe(true);
    expect((await call(t.admin, 'POST', `/internal/v1/keys/${key.id}/rotate`, { token: ADMIN_TOKEN, body: { overlap_seconds: 604_801 } })).status).toBe(422);
    const leaked = await call(t.admin, 'POST', `/internal/v1/keys/${rotated.body.key.id}/revoke-leaked`, { token: ADMIN_TOKEN });
    expect(leaked.status).toBe(200);
    expect(leaked.body.revoked).toBe(true);
    expect((await verify(t, rotated.body.key.plaintext_key)).body.valid).toBe(false);
    // Revoking the chain's newest key ends its predecessor's overlap.
    expect((await verify(t, key.plaintext)).body.valid).toBe(false);
    const again = await call(t.admin, 'POST', `/internal/v1/keys/${rotated.body.key.id}/revoke-leaked`, { token: ADMIN_TOKEN });
    expect(again.body.revoked).toBe(false);
  });

  it('badges and the status filter: live, expiring, overlapping, suspended, expired, revoked', async ({ app: t }) => {
    const tenant = await createTenant(t);
    const c = await signIn(t.admin);
    const now = t.clock.now().getTime();
    const day = 24 * 3600_000;
    const live = await mintChild(t, tenant, { expiresAt: new Date(now + 30 * day) });
    const expiring = await mintChild(t, tenant, { expiresAt: new Date(now + 3 * day) });
    const expired = await mintChild(t, tenant, { expiresAt: new Date(now + 60_000) });
    const suspended = await mintChild(t, tenant);
    const overlapping = await mintChild(t, tenant);
    const revoked = await mintChild(t, tenant);
    t.clock.advance(120_000);
    await t.services.operatorKeys.setSuspension(suspended.id, { suspend: true }, opCtx(t));
    const out = await t.services.operatorKeys.rotate(overlapping.id, 600, opCtx(t));
    recordSecrets(out.plaintext);
    await t.services.operatorKeys.revoke(revoked.id, undefined, opCtx(t));
    const rows = async (status: string) =>
      [...(await c.get(`/console/service-keys/${tenant.serviceKeyId}?status=${status}`)).body.matchAll(/href="\/console\/keys\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    expect(await rows('live')).toEqual(expect.arrayContaining([live.id, out.key.id]));
    expect(await rows('live')).toHaveLength(2);
    expect(await rows('expiring')).toEqual([expiring.id]);
    expect(await rows('expired')).toEqual([expired.id]);
    expect(await rows('suspended')).toEqual([suspended.id]);
    expect(await rows('overlapping')).toEqual([overlapping.id]);
    expect(await rows('revoked')).toEqual([revoked.id]);
    const table = (await c.get(`/console/service-keys/${tenant.serviceKeyId}`)).body;
    for (const s of ['live', 'expiring', 'overlapping', 'suspended', 'expired', 'revoked']) expect(table).toContain(`badge-${s}`);
    expect((await c.get(`/console/service-keys/${tenant.serviceKeyId}?status=bogus`)).status).toBe(422);
  });
});

const opCtx = (t: TestApp) => ({ actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: t.clock.now() });

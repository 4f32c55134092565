import { describe, expect } from 'vitest';
import { signIn } from '../support/console.js';
import { mintChild } from '../support/child-keys.js';
import { createTenant, recordSecrets } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * What the console's pages do, through inject: each action calls the same service as the internal
 * API, plaintexts are shown on their issuing answer only, and the audit trail pages by cursor.
 */

const plaintextOf = (body: string) => /<code id="plaintext">([^<]+)<\/code>/.exec(body)?.[1];

describe('console pages', () => {
  it('rotate shows the successor once; revoke with children=revoke revokes the chain\'s child keys', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const child = await mintChild(t, tenant);
    const rotated = await c.post(`/console/service-keys/${tenant.serviceKeyId}/rotate`, { _csrf: c.csrf });
    expect(rotated.status).toBe(201);
    const successor = plaintextOf(rotated.body)!;
    recordSecrets(successor);
    expect(successor).toMatch(/^sk_/);
    expect(rotated.body).toContain('you will not see this again');
    const sks = await t.services.portal.listServiceKeys(tenant.accountId);
    const live = sks.find((k) => !k.revoked_at)!;
    const revoked = await c.post(`/console/service-keys/${live.id}/revoke`, { _csrf: c.csrf, children: 'revoke' });
    expect(revoked.status).toBe(303);
    expect((await t.services.operatorKeys.get(child.id)).status).toBe('revoked');
    const page = await c.get(`/console/accounts/${tenant.accountId}`);
    expect(page.body).not.toContain(successor);
  });

  it('issues a portal key once, and revokes it from its key page', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const issued = await c.post(`/console/accounts/${tenant.accountId}/portal-keys`, { _csrf: c.csrf, name: 'dashboard', environment: 'test' });
    expect(issued.status).toBe(201);
    recordSecrets(plaintextOf(issued.body)!);
    const portal = await t.services.operatorKeys.list(tenant.accountId, { status: 'active', kind: 'portal', limit: 100 });
    const key = portal.keys.find((k) => k.name === 'dashboard')!;
    expect((await c.post(`/console/keys/${key.id}/revoke`, { _csrf: c.csrf })).status).toBe(303);
    expect((await t.services.operatorKeys.get(key.id)).status).toBe('revoked');
  });

  it('the audit trail: newest first, filter by type and key, cursor pages, event detail', async ({ app: t }) => {
    const tenant = await createTenant(t);
    const c = await signIn(t.admin);
    const keys = [];
    for (let i = 0; i < 55; i++) keys.push(await mintChild(t, tenant));
    const first = await c.get(`/console/accounts/${tenant.accountId}/audit`);
    expect(first.status).toBe(200);
    const next = /<a rel="next" href="([^"]+)"/.exec(first.body)?.[1]?.replace(/&amp;/g, '&');
    expect(next).toBeDefined();
    const second = await c.get(next!);
    expect(second.status).toBe(200);
    const ids = (b: string) => [...b.matchAll(/\/audit\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    expect(ids(first.body)).toHaveLength(50);
    expect(ids(second.body).filter((id) => ids(first.body).includes(id))).toEqual([]);
    const byKey = await c.get(`/console/accounts/${tenant.accountId}/audit?key=${keys[0]!.id}`);
    expect(ids(byKey.body).length).toBeGreaterThanOrEqual(1);
    const byType = await c.get(`/console/accounts/${tenant.accountId}/audit?type=no_such_type`);
    expect(byType.body).toContain('No event matches.');
    const detail = await c.get(`/console/accounts/${tenant.accountId}/audit/${ids(byKey.body)[0]}`);
    expect(detail.status).toBe(200);
    expect(detail.body).toContain(keys[0]!.id);
  });

  it("a service key's keys filter by label, line, permissions and status", async ({ app: t }) => {
    const tenant = await createTenant(t);
    const c = await signIn(t.admin);
    const line = '7d8f2c1e-3b4a-4c5d-8e9f-0a1b2c3d4e5f';
    const a = await mintChild(t, tenant, { agentLabel: 'alpha', permissions: 'read_only' });
    const b = await mintChild(t, tenant, { agentLabel: 'beta', lineId: line });
    const rows = async (query: string) => [...(await c.get(`/console/service-keys/${tenant.serviceKeyId}?${query}`)).body.matchAll(/href="\/console\/keys\/([0-9a-f-]{36})"/g)].map((m) => m[1]);
    expect((await rows('')).sort()).toEqual([a.id, b.id].sort());
    expect(await rows('label=alp')).toEqual([a.id]);
    expect(await rows(`line=${line}`)).toEqual([b.id]);
    expect(await rows('permissions=read_only')).toEqual([a.id]);
    expect(await rows('status=revoked')).toEqual([]);
  });

  it('the activity pages answer for an account and a key', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    expect((await c.get(`/console/accounts/${tenant.accountId}/activity?range=30d`)).body).toContain('Last 30 days');
    expect((await c.get(`/console/keys/${tenant.serviceKeyId}/activity`)).status).toBe(200);
  });
});

import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { generateToken } from '../../src/domain/auth/credentials.js';
import { SERVICE_KEY_READ_GRACE_MS } from '../../src/domain/auth/auth.service.js';
import { it } from '../support/fixtures.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, recordSecrets, type Tenant, type TestApp } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';

/*
 * Every key within the operator's reach (issue 27, items 1 and 2): find keys of every kind, revoke
 * any of them (a service key with an explicit choice for its children), and the leak intake. The
 * H1 flow of the red team runs end to end over HTTP.
 */

let n = 0;
const idem = () => ({ 'idempotency-key': `opkeys-${++n}-${Math.random()}` });
const admin = (t: TestApp, method: string, url: string, body?: unknown) => call(t.admin, method, url, { token: ADMIN_TOKEN, body });

async function mint(t: TestApp, serviceKey: string, name = 'agent'): Promise<{ id: string; token: string; key_prefix: string }> {
  const res = await call(t.app, 'POST', '/v1/keys', { token: serviceKey, body: { name }, headers: idem() });
  expect(res.status).toBe(201);
  return { id: res.body.key.id, token: res.body.key.plaintext_key, key_prefix: res.body.key.key_prefix };
}

/** What the data plane hears about a key: its verify code. */
async function verifyCode(t: TestApp, key: string): Promise<string> {
  const res = await admin(t, 'POST', '/internal/v1/verify', { key, verb: 'read' });
  expect(res.status).toBe(200);
  return res.body.code;
}

async function events(t: TestApp, accountId: string, type: string) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.eventType, type)));
}

async function fleet(t: TestApp) {
  const tenant = await createTenant(t);
  const children = [await mint(t, tenant.serviceKey, 'one'), await mint(t, tenant.serviceKey, 'two'), await mint(t, tenant.serviceKey, 'three')];
  return { tenant, children };
}

describe('GET /internal/v1/accounts/{id}/keys', () => {
  it('lists every key of the account, of every kind, newest first, through cursors', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const all = await admin(t, 'GET', `/internal/v1/accounts/${tenant.accountId}/keys`);
    expect(all.status).toBe(200);
    const kinds = Object.fromEntries((all.body.keys as { id: string; kind: string }[]).map((k) => [k.id, k.kind]));
    expect(kinds).toEqual({
      [tenant.serviceKeyId]: 'service',
      [tenant.apiKeyId]: 'portal',
      ...Object.fromEntries(children.map((c) => [c.id, 'child'])),
    });
    expect(all.body.has_more).toBe(false);
    expect(all.body.next_cursor).toBeNull();
    expect(all.raw).not.toMatch(/token_hash|plaintext|sk_(svc_)?test_[0-9A-Za-z]{20}/);

    // Pages of two: the same keys, in the same order, none twice.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await admin(t, 'GET', `/internal/v1/accounts/${tenant.accountId}/keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.keys.map((k: { id: string }) => k.id));
      cursor = page.body.next_cursor;
      expect(page.body.has_more).toBe(cursor !== null);
    } while (cursor);
    expect(seen).toEqual(all.body.keys.map((k: { id: string }) => k.id));
  });

  it('filters by kind, status and the start of key_prefix', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    await admin(t, 'DELETE', `/internal/v1/keys/${children[0]!.id}`);
    const ids = async (query: string) =>
      ((await admin(t, 'GET', `/internal/v1/accounts/${tenant.accountId}/keys?${query}`)).body.keys as { id: string }[]).map((k) => k.id).sort();
    expect(await ids('kind=service')).toEqual([tenant.serviceKeyId]);
    expect(await ids('kind=portal')).toEqual([tenant.apiKeyId]);
    expect(await ids('kind=child&status=active')).toEqual([children[1]!.id, children[2]!.id].sort());
    expect(await ids('status=revoked')).toEqual([children[0]!.id]);
    expect(await ids(`prefix=${children[2]!.key_prefix}`)).toEqual([children[2]!.id]);
    // `_` is matched literally, not as LIKE's wildcard.
    expect(await ids('prefix=sk_svc_')).toEqual([tenant.serviceKeyId]);
  });

  it('answers 404 for an unknown account and 422 for a bad cursor, prefix or unknown parameter', async ({ app: t, tenant }) => {
    expect(errorCode(await admin(t, 'GET', '/internal/v1/accounts/00000000-0000-4000-8000-000000000000/keys'))).toBe('not_found');
    for (const q of ['cursor=bm90LWEtY3Vyc29y', `prefix=${'a'.repeat(21)}`, 'prefix=sk-live', 'status=gone', 'limit=0', 'offset=3']) {
      const res = await admin(t, 'GET', `/internal/v1/accounts/${tenant.accountId}/keys?${q}`);
      expect(res.status, q).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
  });
});

describe('GET /internal/v1/keys/{id}', () => {
  it('shows a key of any kind with its account, chain and who manages it; never a secret', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const child = await admin(t, 'GET', `/internal/v1/keys/${children[0]!.id}`);
    expect(child.status).toBe(200);
    expect(child.body.key).toMatchObject({
      kind: 'child',
      account_id: tenant.accountId,
      status: 'active',
      permissions: 'full',
      created_by_service_key_id: tenant.serviceKeyId,
      managed_by_service_key_id: tenant.serviceKeyId,
      lineage_id: null,
    });
    const svc = await admin(t, 'GET', `/internal/v1/keys/${tenant.serviceKeyId}`);
    expect(svc.body.key).toMatchObject({ kind: 'service', lineage_id: tenant.serviceKeyId, permissions: null, managed_by_service_key_id: null });
    expect((await admin(t, 'GET', `/internal/v1/keys/${tenant.apiKeyId}`)).body.key).toMatchObject({ kind: 'portal', permissions: 'legacy_full' });
    for (const r of [child, svc]) expect(r.raw).not.toMatch(/token_hash|rotation_secret|plaintext/);
    expect(errorCode(await admin(t, 'GET', '/internal/v1/keys/00000000-0000-4000-8000-000000000000'))).toBe('not_found');
    expect(errorCode(await admin(t, 'GET', '/internal/v1/keys/not-a-uuid'))).toBe('validation_error');
  });
});

describe('DELETE /internal/v1/keys/{id}', () => {
  it('revokes a child or portal key with its event naming the operator; a second call answers the key as it is', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const first = await admin(t, 'DELETE', `/internal/v1/keys/${children[0]!.id}`);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ revoked: true, children: null, key: { status: 'revoked', kind: 'child' } });
    expect(await verifyCode(t, children[0]!.token)).toBe('invalid_api_key');
    const again = await admin(t, 'DELETE', `/internal/v1/keys/${children[0]!.id}`);
    expect(again.body).toMatchObject({ revoked: false, key: { revoked_at: first.body.key.revoked_at } });
    const portalKey = await admin(t, 'DELETE', `/internal/v1/keys/${tenant.apiKeyId}?children=revoke`);
    expect(portalKey.body).toMatchObject({ revoked: true, key: { kind: 'portal' } });
    const [ev] = await events(t, tenant.accountId, 'agent_key_revoked');
    expect(ev).toMatchObject({ subjectKeyId: children[0]!.id, actorKind: 'portal', actorKeyPrefix: 'operator:bootstrap', data: { key_prefix: children[0]!.key_prefix } });
    expect(await events(t, tenant.accountId, 'agent_key_revoked')).toHaveLength(1);
    expect(await events(t, tenant.accountId, 'portal_key_revoked')).toHaveLength(1);
    expect(errorCode(await admin(t, 'DELETE', '/internal/v1/keys/00000000-0000-4000-8000-000000000000'))).toBe('not_found');
    expect(errorCode(await admin(t, 'DELETE', `/internal/v1/keys/${tenant.serviceKeyId}?children=maybe`))).toBe('validation_error');
  });

  it('needs an explicit choice for a service key whose chain has live children', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const refused = await admin(t, 'DELETE', `/internal/v1/keys/${tenant.serviceKeyId}`);
    expect(refused.status).toBe(422);
    expect(refused.body.error.details[0].field).toBe('children');
    expect(refused.body.error.message).toMatch(/3 live child key/);
    expect(await verifyCode(t, children[0]!.token)).toBe('valid');
    // Without children, a service key needs no choice.
    const bare = await createTenant(t);
    expect((await admin(t, 'DELETE', `/internal/v1/keys/${bare.serviceKeyId}`)).body).toMatchObject({ revoked: true, children: { revoked: 0, live: 0 } });
  });

  it('H1: children of a revoked service key stay valid with keep, and the operator revokes them after the grace', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    // The textbook incident response of the red team: the portal revokes the service key (children kept).
    expect((await admin(t, 'DELETE', `/internal/v1/service-keys/${tenant.serviceKeyId}`)).status).toBe(200);
    t.clock.advance(SERVICE_KEY_READ_GRACE_MS + 1_000);
    for (const c of children) expect(await verifyCode(t, c.token)).toBe('valid');
    expect(errorCode(await call(t.app, 'DELETE', `/v1/keys/${children[0]!.id}`, { token: tenant.serviceKey }))).toBe('invalid_api_key');
    const shown = await admin(t, 'GET', `/internal/v1/keys/${children[0]!.id}`);
    expect(shown.body.key.managed_by_service_key_id).toBeNull();

    // One child by id...
    expect((await admin(t, 'DELETE', `/internal/v1/keys/${children[0]!.id}`)).body.revoked).toBe(true);
    expect(await verifyCode(t, children[0]!.token)).toBe('invalid_api_key');
    expect(await verifyCode(t, children[1]!.token)).toBe('valid');
    // ...and the rest through the (already revoked) service key, each with its own event.
    const rest = await admin(t, 'DELETE', `/internal/v1/keys/${tenant.serviceKeyId}?children=revoke`);
    expect(rest.status).toBe(200);
    expect(rest.body).toMatchObject({ revoked: false, children: { revoked: 2, live: 0 }, key: { kind: 'service', status: 'revoked' } });
    for (const c of children) expect(await verifyCode(t, c.token)).toBe('invalid_api_key');
    const childEvents = await events(t, tenant.accountId, 'agent_key_revoked');
    expect(childEvents).toHaveLength(3);
    expect(childEvents.filter((e) => (e.data as { reason?: string }).reason === 'service_key_revoked').map((e) => e.subjectKeyId).sort()).toEqual(
      [children[1]!.id, children[2]!.id].sort(),
    );
  });

  it('children=keep leaves them valid; children=revoke takes them with the service key in one go', async ({ app: t }) => {
    const kept = await fleet(t);
    const keep = await admin(t, 'DELETE', `/internal/v1/keys/${kept.tenant.serviceKeyId}?children=keep`);
    expect(keep.body).toMatchObject({ revoked: true, children: { revoked: 0, live: 3 } });
    for (const c of kept.children) expect(await verifyCode(t, c.token)).toBe('valid');

    const gone = await fleet(t);
    const res = await admin(t, 'DELETE', `/internal/v1/keys/${gone.tenant.serviceKeyId}?children=revoke`);
    expect(res.body).toMatchObject({ revoked: true, children: { revoked: 3, live: 0 }, key: { status: 'revoked' } });
    for (const c of gone.children) expect(await verifyCode(t, c.token)).toBe('invalid_api_key');
    const [svcEvent] = await events(t, gone.tenant.accountId, 'service_key_revoked');
    expect(svcEvent!.data).toMatchObject({ children: 'revoke', children_revoked: 3 });
    expect(await events(t, gone.tenant.accountId, 'agent_key_revoked')).toHaveLength(3);
    // The fleet's events, recorded by one INSERT, are linked into the account's chain like any other.
    const chain = await t.services.chain.verify({ accountId: gone.tenant.accountId });
    expect(chain).toMatchObject({ accounts: 1, firstBreak: null, linkedFirst: 0 });
    // Writes are refused at once; reads keep the contract's 60-second grace.
    expect((await call(t.app, 'POST', '/v1/keys', { token: gone.tenant.serviceKey, body: { name: 'x' }, headers: idem() })).status).toBe(401);
  });

  it("a rotated service key's successor manages the predecessor's children; the operator sees who", async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const rotated = await admin(t, 'POST', `/internal/v1/service-keys/${tenant.serviceKeyId}/rotate`);
    const successor = rotated.body.service_key as { id: string; plaintext_key: string };
    t.clock.advance(SERVICE_KEY_READ_GRACE_MS + 1_000);
    expect((await admin(t, 'GET', `/internal/v1/keys/${children[0]!.id}`)).body.key.managed_by_service_key_id).toBe(successor.id);
    expect((await call(t.app, 'DELETE', `/v1/keys/${children[0]!.id}`, { token: successor.plaintext_key })).status).toBe(200);
    expect(await verifyCode(t, children[0]!.token)).toBe('invalid_api_key');
    // The predecessor's chain is the successor's: its children count as the chain's.
    const refused = await admin(t, 'DELETE', `/internal/v1/keys/${tenant.serviceKeyId}`);
    expect(refused.body.error.message).toMatch(/2 live child key/);
  });
});

describe('POST /internal/v1/keys/revoke-leaked', () => {
  const leak = (t: TestApp, tokens: string[]) => admin(t, 'POST', '/internal/v1/keys/revoke-leaked', { tokens });

  it('revokes each live key a token names, of any kind and account, with reason leaked, and never echoes a token', async ({ app: t }) => {
    const { tenant, children } = await fleet(t);
    const other: Tenant = await createTenant(t);
    const unknown = generateToken('api', 'test').plaintext;
    recordSecrets(unknown);
    const tokens = [children[0]!.token, ` ${tenant.apiKey}\n`, other.serviceKey, withLastCharChanged(children[1]!.token), 'sk_live_short', 'ghp_notours', unknown, children[0]!.token];
    const res = await leak(t, tokens);
    expect(res.status).toBe(200);
    const r = res.body.results;
    expect(r).toHaveLength(tokens.length);
    expect(r[0]).toEqual({ prefix: children[0]!.key_prefix, found: true, revoked: true, key_id: children[0]!.id, kind: 'child', account_id: tenant.accountId });
    expect(r[1]).toMatchObject({ found: true, revoked: true, key_id: tenant.apiKeyId, kind: 'portal' });
    expect(r[2]).toMatchObject({ found: true, revoked: true, key_id: other.serviceKeyId, kind: 'service', account_id: other.accountId });
    expect(r[3]).toEqual({ prefix: children[1]!.key_prefix, found: false, revoked: false, key_id: null, kind: null, account_id: null });
    expect(r[4]).toMatchObject({ prefix: 'sk_live_short', found: false });
    expect(r[5]).toMatchObject({ prefix: null, found: false });
    expect(r[6]).toMatchObject({ prefix: unknown.slice(0, 16), found: false });
    expect(r[7]).toEqual(r[0]);
    for (const token of tokens.filter((x) => x.length > 20)) expect(res.raw).not.toContain(token.trim());

    expect(await verifyCode(t, children[0]!.token)).toBe('invalid_api_key');
    expect(await verifyCode(t, tenant.apiKey)).toBe('invalid_api_key');
    expect(await verifyCode(t, children[1]!.token)).toBe('valid');
    const [ev] = await events(t, tenant.accountId, 'agent_key_revoked');
    expect(ev!.data).toEqual({ key_prefix: children[0]!.key_prefix, reason: 'leaked' });
    expect(ev!.actorKind).toBe('portal');
    expect((await events(t, other.accountId, 'service_key_revoked'))[0]!.data).toMatchObject({ reason: 'leaked' });
    // A leaked service key's children are kept (the operator decides with DELETE …?children=revoke).
    expect(await verifyCode(t, children[2]!.token)).toBe('valid');

    // Idempotent: found, not revoked again, no second event.
    const again = await leak(t, [children[0]!.token]);
    expect(again.body.results[0]).toMatchObject({ found: true, revoked: false, key_id: children[0]!.id });
    expect(await events(t, tenant.accountId, 'agent_key_revoked')).toHaveLength(1);
  });

  it('takes 1 to 1,000 strings', async ({ app: t }) => {
    const many = Array.from({ length: 1000 }, () => generateToken('api', 'live').plaintext);
    recordSecrets(many.join('\n'));
    const res = await leak(t, many);
    expect(res.status).toBe(200);
    expect(res.body.results.every((x: { found: boolean }) => !x.found)).toBe(true);
    expect((await leak(t, [...many.slice(0, 500), ...many.slice(0, 501)])).status).toBe(422);
    expect((await leak(t, [])).status).toBe(422);
    expect((await leak(t, [42 as unknown as string])).status).toBe(422);
    const extra = await admin(t, 'POST', '/internal/v1/keys/revoke-leaked', { tokens: ['x'], more: 1 });
    expect(errorCode(extra)).toBe('validation_error');
  });
});

import { describe, expect } from 'vitest';
import { mintChild } from '../support/child-keys.js';
import { delegated, isValid, keyById, rootKey } from '../support/delegation.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * What an agent and its service key see of a delegation tree: the agent's list and revocation of
 * its delegated keys, the service key's list, PATCH and rotation, and the audit feeds.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const listOwn = (key: string, query = '') => call(t.app, 'GET', `/v1/agents/self/keys${query}`, { token: key });
const revokeOwn = (key: string, id: string) => call(t.app, 'DELETE', `/v1/agents/self/keys/${id}`, { token: key });
const audit = (key: string, keyId: string) => call(t.app, 'GET', `/v1/audit?api_key_id=${keyId}&limit=50`, { token: key });
const ids = (keys: { id: string }[]) => keys.map((k) => k.id).sort();

/** root → a (may delegate) → a1 (may delegate) → a11, and root → b. */
async function tree() {
  const root = await rootKey(t, tenant, { monthlyCapCents: 10_000 });
  const a = await delegated(t, root.plaintext, { name: 'a', budget_cents: 1000, can_delegate: true, ttl_seconds: 3000 });
  const b = await delegated(t, root.plaintext, { name: 'b', budget_cents: 500, permissions: 'read_only' });
  const a1 = await delegated(t, a.plaintext, { name: 'a1', budget_cents: 300, can_delegate: true, ttl_seconds: 2000 });
  const a11 = await delegated(t, a1.plaintext, { name: 'a11', budget_cents: 100, ttl_seconds: 1000 });
  return { root, a, b, a1, a11 };
}

describe('GET /v1/agents/self/keys', () => {
  it('lists the direct children by default and the whole subtree with depth=all, each with its delegation', async () => {
    const { root, a, b, a1, a11 } = await tree();
    const children = await listOwn(root.plaintext);
    expect(children.status).toBe(200);
    expect(children.body.total).toBe(2);
    expect(ids(children.body.keys)).toEqual(ids([a, b]));
    const byId = new Map(children.body.keys.map((k: any) => [k.id, k]));
    expect(byId.get(a.id)).toMatchObject({
      name: 'a',
      can_delegate: true,
      parent_key_id: root.id,
      monthly_cap_cents: 1000,
      delegation: { parent_key_id: root.id, depth: 1, budget_cents: 1000, spent_cents: 0, expires_at: a.body.delegation.expires_at },
    });
    expect(byId.get(b.id)).toMatchObject({ permissions: 'read_only', delegation: { depth: 1, budget_cents: 500, spent_cents: 0 } });
    expect(children.body.keys.every((k: any) => k.plaintext_key === undefined)).toBe(true);

    const all = await listOwn(root.plaintext, '?depth=all');
    expect(all.body.total).toBe(4);
    expect(ids(all.body.keys)).toEqual(ids([a, b, a1, a11]));
    const deep = all.body.keys.find((k: any) => k.id === a11.id);
    expect(deep.delegation).toMatchObject({ depth: 3, parent_key_id: a1.id, budget_cents: 100 });
    // A middle key sees its own subtree only.
    expect(ids((await listOwn(a.plaintext, '?depth=all')).body.keys)).toEqual(ids([a1, a11]));
    expect(ids((await listOwn(a.plaintext)).body.keys)).toEqual(ids([a1]));
    expect((await listOwn(a11.plaintext)).body).toEqual({ keys: [], total: 0 });
  });

  it('shows what a child spent, and pages with limit and offset', async () => {
    const root = await rootKey(t, tenant, { monthlyCapCents: 1000 });
    const child = await delegated(t, root.plaintext, { budget_cents: 400 });
    for (const n of [1, 2, 3]) await delegated(t, root.plaintext, { name: `extra-${n}`, budget_cents: 10 });
    const debit = await call(t.admin, 'POST', '/internal/v1/verify', {
      token: ADMIN_TOKEN,
      body: { key: child.plaintext, verb: 'call', cost_cents: 150, request_id: `views-${Date.now()}` },
    });
    expect(debit.body.valid).toBe(true);
    const all = await listOwn(root.plaintext, '?limit=10');
    expect(all.body.keys.find((k: any) => k.id === child.id).delegation).toMatchObject({ budget_cents: 400, spent_cents: 150 });
    const page1 = await listOwn(root.plaintext, '?limit=2');
    const page2 = await listOwn(root.plaintext, '?limit=2&offset=2');
    expect(page1.body.total).toBe(4);
    expect(page2.body.total).toBe(4);
    expect(ids([...page1.body.keys, ...page2.body.keys])).toEqual(ids(all.body.keys));
    // The spent part of the child is charged to the root; the unspent part stays reserved.
    expect((await call(t.app, 'GET', '/v1/agents/self', { token: root.plaintext })).body.delegation).toMatchObject({
      reserved_cents: 250 + 30,
      available_cents: 1000 - 150 - 280,
    });
  });

  it('a key that never delegated lists nothing; bad queries are 422', async () => {
    const plain = await mintChild(t, tenant);
    expect((await listOwn(plain.plaintext)).body).toEqual({ keys: [], total: 0 });
    for (const q of ['?depth=grandchildren', '?limit=0', '?limit=101', '?offset=-1', '?other=1']) {
      const res = await listOwn(plain.plaintext, q);
      expect(res.status, q).toBe(422);
      expect(errorCode(res), q).toBe('validation_error');
    }
  });
});

describe('DELETE /v1/agents/self/keys/{id}', () => {
  it('a non-descendant (sibling, parent, itself, another tree, unknown, not a uuid) is 404', async () => {
    const { root, a, b, a1 } = await tree();
    const stranger = await mintChild(t, tenant);
    for (const id of [b.id, root.id, a.id, stranger.id, tenant.apiKeyId, '00000000-0000-4000-8000-000000000000', 'nope']) {
      const res = await revokeOwn(a.plaintext, id);
      expect(res.status, id).toBe(404);
      expect(errorCode(res), id).toBe('not_found');
    }
    // A child cannot revoke its parent either.
    expect((await revokeOwn(a1.plaintext, a.id)).status).toBe(404);
    expect(await isValid(t, b.plaintext)).toBe(true);
    expect(await isValid(t, root.plaintext)).toBe(true);
  });

  it('the root revokes a grandchild, and its subtree goes with it', async () => {
    const { root, a, b, a1, a11 } = await tree();
    const res = await revokeOwn(root.plaintext, a1.id);
    expect(res.status).toBe(200);
    expect(res.body.key).toMatchObject({ id: a1.id, delegation: { depth: 2, parent_key_id: a.id } });
    expect(res.body.key.revoked_at).not.toBeNull();
    expect(await isValid(t, a1.plaintext)).toBe(false);
    expect(await isValid(t, a11.plaintext)).toBe(false);
    expect((await keyById(t, tenant, a11.id)).revoked_at).not.toBeNull();
    // The rest of the tree works on.
    for (const k of [root, a, b]) expect(await isValid(t, k.plaintext)).toBe(true);
    expect(ids((await listOwn(root.plaintext, '?depth=all')).body.keys)).toEqual(ids([a, b]));
    // Revoked already: no longer found among the working keys, and a second revoke is not a second event.
    expect((await revokeOwn(root.plaintext, a1.id)).status).toBe(404);
  });
});

describe("the service key's view", () => {
  it('GET /v1/keys lists the delegated keys with parent_key_id', async () => {
    const { root, a, a1 } = await tree();
    const list = await call(t.app, 'GET', '/v1/keys?limit=100', { token: tenant.serviceKey });
    expect(list.status).toBe(200);
    const byId = new Map(list.body.keys.map((k: any) => [k.id, k]));
    expect(byId.get(root.id)).toMatchObject({ parent_key_id: null, can_delegate: true });
    expect(byId.get(a.id)).toMatchObject({ parent_key_id: root.id, created_by_service_key_id: tenant.serviceKeyId });
    expect(byId.get(a1.id)).toMatchObject({ parent_key_id: a.id, created_by_service_key_id: tenant.serviceKeyId });
  });

  it("PATCH of a delegated key's permissions, line, cap or expiry is 422; of its name, 200", async () => {
    const { a } = await tree();
    const patch = (body: unknown) => call(t.app, 'PATCH', `/v1/keys/${a.id}`, { token: tenant.serviceKey, body });
    for (const body of [
      { permissions: 'read_only' },
      { line_id: '6a1f0d38-2c55-4c1e-9b7a-0d3e1f2a4b5c' },
      { monthly_cap_cents: 5 },
      { expires_at: null },
      { name: 'renamed', permissions: 'full' },
    ]) {
      const res = await patch(body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
    expect((await keyById(t, tenant, a.id)).name).toBe('a');
    const ok = await patch({ name: 'renamed' });
    expect(ok.status).toBe(200);
    expect(ok.body.key).toMatchObject({ name: 'renamed', permissions: 'full', monthly_cap_cents: 1000, parent_key_id: expect.any(String) });
  });

  it("rotating the parent keeps its children working and re-points their parent_key_id to the successor", async () => {
    const { root, a, b, a11 } = await tree();
    const rotated = await call(t.app, 'POST', `/v1/keys/${root.id}/rotate`, {
      token: tenant.serviceKey,
      body: {},
      headers: { 'idempotency-key': `rot-${Date.now()}-${Math.random()}` },
    });
    expect(rotated.status).toBe(201);
    const successor = rotated.body.key;
    expect(successor.can_delegate).toBe(true);
    for (const k of [a, b, a11]) expect(await isValid(t, k.plaintext)).toBe(true);
    expect((await keyById(t, tenant, a.id)).parent_key_id).toBe(successor.id);
    expect((await keyById(t, tenant, b.id)).parent_key_id).toBe(successor.id);
    // Deeper keys keep their own parents.
    expect((await keyById(t, tenant, a11.id)).parent_key_id).not.toBe(successor.id);
    // The successor sees the same children, and delegates on as the same agent.
    const listed = await listOwn(successor.plaintext_key);
    expect(ids(listed.body.keys)).toEqual(ids([a, b]));
    expect(listed.body.keys.every((k: any) => k.delegation.parent_key_id === successor.id)).toBe(true);
    const more = await delegated(t, successor.plaintext_key, { budget_cents: 1 });
    expect(more.body.delegation).toMatchObject({ parent_key_id: successor.id, depth: 1 });
    expect((await call(t.app, 'GET', '/v1/agents/self', { token: successor.plaintext_key })).body.delegation.reserved_cents).toBe(1501);
  });
});

describe('audit feeds', () => {
  it("agent_key_delegated is in both the parent's and the child's feed, with the parent as actor", async () => {
    const root = await rootKey(t, tenant);
    const child = await delegated(t, root.plaintext, { budget_cents: 42 });
    for (const [reader, feedOf] of [
      [root.plaintext, root.id],
      [root.plaintext, child.id],
      [child.plaintext, child.id],
      [tenant.apiKey, root.id],
    ] as const) {
      const res = await audit(reader, feedOf);
      expect(res.status, feedOf).toBe(200);
      const ev = res.body.events.find((e: any) => e.data.event_type === 'agent_key_delegated');
      expect(ev, feedOf).toBeDefined();
      expect(ev.data).toMatchObject({ actor_key_id: root.id, actor_kind: 'api_key', subject_key_id: child.id });
      expect(ev.data.details).toMatchObject({ parent_key_id: root.id, depth: 1, budget_cents: 42, can_delegate: false });
    }
  });

  it("a delegated or line-scoped key reading a non-descendant's feed is 403 agent_scope_error; a parent reads its descendants'", async () => {
    const { root, a, b, a1, a11 } = await tree();
    for (const id of [root.id, b.id, tenant.apiKeyId]) {
      const res = await audit(a.plaintext, id);
      expect(res.status, id).toBe(403);
      expect(errorCode(res), id).toBe('agent_scope_error');
      expect(res.body.error.details[0], id).toMatchObject({ field: 'api_key_id', line_id: null });
    }
    const up = await audit(a11.plaintext, a1.id);
    expect(up.status).toBe(403);
    expect(errorCode(up)).toBe('agent_scope_error');
    for (const id of [a.id, a1.id, a11.id]) expect((await audit(a.plaintext, id)).status, id).toBe(200);
    expect((await audit(root.plaintext, a11.id)).status).toBe(200);
    // A line-scoped root: its own descendants yes, a stranger no.
    const scoped = await rootKey(t, tenant, { lineId: '6a1f0d38-2c55-4c1e-9b7a-0d3e1f2a4b5c' });
    const kid = await delegated(t, scoped.plaintext);
    expect((await audit(scoped.plaintext, kid.id)).status).toBe(200);
    const stranger = await audit(scoped.plaintext, b.id);
    expect(stranger.status).toBe(403);
    expect(errorCode(stranger)).toBe('agent_scope_error');
    expect(stranger.body.error.details[0].line_id).toBe('6a1f0d38-2c55-4c1e-9b7a-0d3e1f2a4b5c');
  });
});

import { and, eq, inArray } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, complianceEvents } from '../../src/db/schema.js';
import { delegated, isValid, keyById, rootKey, verifyKey } from '../support/delegation.js';
import { ADMIN_TOKEN, call, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * What happens below a key when it stops (one instance): revocation, suspension and resumption take
 * the subtree with them, each key with its event; and verify refuses a delegated key whose ancestor
 * stopped even when no cascade wrote anything below it.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

/** root → a (may delegate) → a1 (may delegate) → a11, and root → b. */
async function tree() {
  const root = await rootKey(t, tenant, { monthlyCapCents: 10_000 });
  const a = await delegated(t, root.plaintext, { name: 'a', budget_cents: 1000, can_delegate: true, ttl_seconds: 3000 });
  const b = await delegated(t, root.plaintext, { name: 'b', budget_cents: 500 });
  const a1 = await delegated(t, a.plaintext, { name: 'a1', budget_cents: 300, can_delegate: true, ttl_seconds: 2000 });
  const a11 = await delegated(t, a1.plaintext, { name: 'a11', budget_cents: 100, ttl_seconds: 1000 });
  return { root, a, b, a1, a11, below: [a, b, a1, a11] };
}

/** The events of a type about these keys, as stored. */
async function eventsOf(type: string, keyIds: string[]) {
  return t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.eventType, type as 'agent_key_revoked'), inArray(complianceEvents.subjectKeyId, keyIds)));
}

const reasons = async (type: string, keyIds: string[]) =>
  new Map((await eventsOf(type, keyIds)).map((e) => [e.subjectKeyId, (e.data as { reason?: string }).reason]));

const byService = (method: string, url: string, body?: unknown) => call(t.app, method, url, { token: tenant.serviceKey, body });
const debit = (key: string, cost: number) =>
  call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call', cost_cents: cost, request_id: `casc-${Date.now()}-${Math.random()}` } });

describe('revocation', () => {
  it('the service key revoking the root revokes its children and grandchildren, each with reason parent_revoked', async () => {
    const { root, below } = await tree();
    for (const k of below) expect(await isValid(t, k.plaintext)).toBe(true);
    const res = await byService('DELETE', `/v1/keys/${root.id}`);
    expect(res.status).toBe(200);
    for (const k of [root, ...below]) {
      expect(await isValid(t, k.plaintext), k.id).toBe(false);
      expect((await keyById(t, tenant, k.id)).revoked_at, k.id).not.toBeNull();
    }
    const ids = below.map((k) => k.id);
    const why = await reasons('agent_key_revoked', ids);
    expect(why.size).toBe(4);
    for (const id of ids) expect(why.get(id), id).toBe('parent_revoked');
    // One event per key: the root's own revocation names no parent.
    expect((await eventsOf('agent_key_revoked', [root.id])).length).toBe(1);
  });

  it("the operator's revocation of a middle key takes its subtree, not its siblings or ancestors", async () => {
    const { root, a, b, a1, a11 } = await tree();
    const res = await call(t.admin, 'DELETE', `/internal/v1/keys/${a.id}`, { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    for (const k of [a, a1, a11]) expect(await isValid(t, k.plaintext), k.id).toBe(false);
    for (const k of [root, b]) expect(await isValid(t, k.plaintext), k.id).toBe(true);
    const why = await reasons('agent_key_revoked', [a1.id, a11.id]);
    expect([...why.values()]).toEqual(['parent_revoked', 'parent_revoked']);
    // What a reserved for its subtree is back in the root's available amount.
    expect((await call(t.app, 'GET', '/v1/agents/self', { token: root.plaintext })).body.delegation).toMatchObject({ reserved_cents: 500, available_cents: 9500 });
  });
});

describe('suspension', () => {
  it("suspending the parent suspends the subtree (parent_suspended); resuming resumes exactly those, not a child suspended on its own", async () => {
    const { root, a, b, a1, a11 } = await tree();
    expect((await byService('POST', `/v1/keys/${b.id}/suspend`, {})).status).toBe(200);
    expect(await isValid(t, b.plaintext)).toBe(false);

    expect((await byService('POST', `/v1/keys/${root.id}/suspend`, {})).status).toBe(200);
    for (const k of [root, a, b, a1, a11]) expect(await isValid(t, k.plaintext), k.id).toBe(false);
    for (const k of [a, a1, a11]) expect((await keyById(t, tenant, k.id)).suspended_at, k.id).not.toBeNull();
    const suspended = await reasons('agent_key_suspended', [a.id, b.id, a1.id, a11.id]);
    // b has its own suspension's event only (no reason): the parent's left it alone.
    expect(Object.fromEntries(suspended)).toStrictEqual({ [a.id]: 'parent_suspended', [a1.id]: 'parent_suspended', [a11.id]: 'parent_suspended', [b.id]: undefined });
    expect((await eventsOf('agent_key_suspended', [b.id])).length).toBe(1);
    // A debit through a suspended subtree is refused as well.
    expect((await debit(a11.plaintext, 5)).body.valid).toBe(false);

    expect((await byService('POST', `/v1/keys/${root.id}/resume`, {})).status).toBe(200);
    for (const k of [root, a, a1, a11]) expect(await isValid(t, k.plaintext), k.id).toBe(true);
    expect(await isValid(t, b.plaintext)).toBe(false);
    expect((await keyById(t, tenant, b.id)).suspended_at).not.toBeNull();
    const resumed = await reasons('agent_key_resumed', [a.id, b.id, a1.id, a11.id]);
    expect(Object.fromEntries(resumed)).toStrictEqual({ [a.id]: 'parent_resumed', [a1.id]: 'parent_resumed', [a11.id]: 'parent_resumed' });
    // b resumes when its own suspension is lifted.
    expect((await byService('POST', `/v1/keys/${b.id}/resume`, {})).status).toBe(200);
    expect(await isValid(t, b.plaintext)).toBe(true);
  });

  it("suspending a middle key stops its subtree only; a child resumed on its own while its parent is suspended still fails verify", async () => {
    const { root, a, b, a1, a11 } = await tree();
    expect((await byService('POST', `/v1/keys/${a.id}/suspend`, {})).status).toBe(200);
    for (const k of [a, a1, a11]) expect(await isValid(t, k.plaintext), k.id).toBe(false);
    for (const k of [root, b]) expect(await isValid(t, k.plaintext), k.id).toBe(true);
    // Its own resume clears a1's row, but a is still suspended: verify reads the ancestors.
    expect((await byService('POST', `/v1/keys/${a1.id}/resume`, {})).status).toBe(200);
    expect((await keyById(t, tenant, a1.id)).suspended_at).toBeNull();
    expect(await isValid(t, a1.plaintext)).toBe(false);
    expect(await isValid(t, a11.plaintext)).toBe(false);
  });
});

describe('verify reads the ancestors, not only the cascade', () => {
  it('an ancestor revoked directly in SQL (no cascade write) makes its descendants invalid, for reads and debits', async () => {
    const { root, a, b, a1, a11 } = await tree();
    for (const k of [a, a1, a11]) expect(await isValid(t, k.plaintext)).toBe(true);
    await t.database.db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.id, a.id));
    // The rows below were not touched...
    const rows = await t.database.db.select().from(apiKeys).where(inArray(apiKeys.id, [a1.id, a11.id]));
    expect(rows.map((r) => r.revokedAt)).toEqual([null, null]);
    // ...and still verify answers the one invalid_api_key for them.
    for (const k of [a1, a11]) {
      const res = await verifyKey(t, k.plaintext);
      expect(res.body, k.id).toMatchObject({ valid: false, code: 'invalid_api_key' });
      expect((await debit(k.plaintext, 1)).body, k.id).toMatchObject({ valid: false, code: 'invalid_api_key' });
    }
    for (const k of [root, b]) expect(await isValid(t, k.plaintext)).toBe(true);
  });

  it('the root revoked directly in SQL: every key of the tree is invalid', async () => {
    const { root, below } = await tree();
    await t.database.db.update(apiKeys).set({ revokedAt: new Date() }).where(eq(apiKeys.id, root.id));
    for (const k of below) expect(await isValid(t, k.plaintext), k.id).toBe(false);
  });

  it('an ancestor suspended or expired directly in SQL makes its descendants invalid', async () => {
    const first = await tree();
    await t.database.db.update(apiKeys).set({ suspendedAt: new Date() }).where(eq(apiKeys.id, first.a1.id));
    expect(await isValid(t, first.a11.plaintext)).toBe(false);
    expect(await isValid(t, first.a.plaintext)).toBe(true);
    const second = await tree();
    await t.database.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, second.a.id));
    for (const k of [second.a1, second.a11]) expect(await isValid(t, k.plaintext), k.id).toBe(false);
    expect(await isValid(t, second.b.plaintext)).toBe(true);
  });
});

describe('expiry', () => {
  it("moving the parent's expiry earlier caps its subtree's", async () => {
    const { root, a, b, a1, a11 } = await tree();
    const soon = new Date(t.clock.now().getTime() + 600_000);
    soon.setMilliseconds(0);
    const res = await byService('PATCH', `/v1/keys/${root.id}`, { expires_at: soon.toISOString() });
    expect(res.status).toBe(200);
    for (const k of [a, b, a1, a11]) expect((await keyById(t, tenant, k.id)).expires_at, k.id).toBe(soon.toISOString());
    const capped = await reasons('agent_key_updated', [a.id, b.id, a1.id, a11.id]);
    expect([...capped.values()]).toEqual(['parent_expiry', 'parent_expiry', 'parent_expiry', 'parent_expiry']);
  });
});

import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys } from '../../src/db/schema.js';
import { mintChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, recordSecrets, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * The debit of a delegated key (db/sql/verify_debit_batch.sql): charged to the key and every
 * ancestor in one step, refused by the first cap it would exceed, and refused when an ancestor
 * stopped even without the cascade's writes.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

let seq = 0;
const rid = () => `deleg-${Date.now()}-${++seq}`;
const verify = (body: Record<string, unknown>) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
const spendOf = async (id: string) => (await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0]!.monthlySpendCents;

/** Delegates from `parent` (a plaintext key) and returns the child's id and plaintext. */
async function delegate(parent: string, body: Record<string, unknown> = {}) {
  const res = await call(t.app, 'POST', '/v1/agents/self/keys', {
    token: parent,
    headers: { 'idempotency-key': rid() },
    body: { name: 'tool', permissions: 'full', budget_cents: 300, ttl_seconds: 3600, can_delegate: true, ...body },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  recordSecrets(res.body.key.plaintext_key);
  return { id: res.body.key.id as string, plaintext: res.body.key.plaintext_key as string, body: res.body };
}

/** A root capped at `cap` with a chain of delegated keys down to depth 3. */
async function tree(cap: number | null) {
  const root = await mintChild(t, tenant, { monthlyCapCents: cap, canDelegate: true });
  // Each lifetime within its parent's: a delegated key never outlives the key that made it.
  const d1 = await delegate(root.plaintext, { budget_cents: 600, ttl_seconds: 3600 });
  const d2 = await delegate(d1.plaintext, { budget_cents: 400, ttl_seconds: 3000 });
  const d3 = await delegate(d2.plaintext, { budget_cents: 200, ttl_seconds: 2400, can_delegate: false });
  return { root, d1, d2, d3 };
}

describe('debits through delegated keys', () => {
  it('charges the key and every ancestor, and answers the delegation', async () => {
    const { root, d1, d2, d3 } = await tree(1000);
    expect(d3.body.delegation).toMatchObject({ parent_key_id: d2.id, depth: 3, budget_cents: 200 });
    const res = await verify({ key: d3.plaintext, verb: 'call', cost_cents: 50, request_id: rid() });
    expect(res.body.valid).toBe(true);
    expect(await Promise.all([root.id, d1.id, d2.id, d3.id].map(spendOf))).toEqual([50, 50, 50, 50]);
    const direct = await verify({ key: d1.plaintext, verb: 'call', cost_cents: 20, request_id: rid() });
    expect(direct.body.valid).toBe(true);
    expect(await Promise.all([root.id, d1.id, d2.id, d3.id].map(spendOf))).toEqual([70, 70, 50, 50]);
  });

  it('refuses a debit past the key budget, and one past an ancestor cap', async () => {
    const { root, d3 } = await tree(2000);
    const over = await verify({ key: d3.plaintext, verb: 'call', cost_cents: 201, request_id: rid() });
    expect(over.body).toMatchObject({ valid: false, code: 'agent_cap_exceeded' });
    // The root's cap lowered below what the chain below it may spend: the root's cap binds.
    await t.database.db.update(apiKeys).set({ monthlyCapCents: 30 }).where(eq(apiKeys.id, root.id));
    const capped = await verify({ key: d3.plaintext, verb: 'call', cost_cents: 40, request_id: rid() });
    expect(capped.body).toMatchObject({ valid: false, code: 'agent_cap_exceeded' });
    expect(capped.body.error.error.details[0]).toMatchObject({ cap_cents: 30 });
    // The agent's own check answers as verify does, by the same bounds.
    const checked = await call(t.app, 'POST', '/v1/agents/self/check', { token: d3.plaintext, body: { verb: 'call', cost_cents: 40 } });
    expect(checked.body).toMatchObject({ allowed: false, code: 'agent_cap_exceeded', details: [{ cap_cents: 30 }] });
    expect(await spendOf(d3.id)).toBe(0);
  });

  it("keeps a parent's own debits out of its children's reservations", async () => {
    const root = await mintChild(t, tenant, { monthlyCapCents: 1000, canDelegate: true });
    await delegate(root.plaintext, { budget_cents: 400 });
    await delegate(root.plaintext, { budget_cents: 400 });
    expect((await verify({ key: root.plaintext, verb: 'call', cost_cents: 200, request_id: rid() })).body.valid).toBe(true);
    expect((await verify({ key: root.plaintext, verb: 'call', cost_cents: 1, request_id: rid() })).body).toMatchObject({ code: 'agent_cap_exceeded' });
    const checked = await call(t.app, 'POST', '/v1/agents/self/check', { token: root.plaintext, body: { verb: 'call', cost_cents: 1 } });
    expect(checked.body).toMatchObject({ allowed: false, code: 'agent_cap_exceeded', details: [{ spent_cents: 1000, cap_cents: 1000 }] });
  });

  it('answers a replayed request_id without charging anyone twice', async () => {
    const { root, d2 } = await tree(null);
    const request = rid();
    expect((await verify({ key: d2.plaintext, verb: 'call', cost_cents: 25, request_id: request })).body.debit.replayed).toBe(false);
    expect((await verify({ key: d2.plaintext, verb: 'call', cost_cents: 25, request_id: request })).body.debit.replayed).toBe(true);
    expect(await spendOf(root.id)).toBe(25);
  });

  it('refuses, with and without cost, a key whose ancestor stopped even without the cascade writes', async () => {
    for (const change of [{ revokedAt: new Date(t.clock.now().getTime() - 1000) }, { suspendedAt: t.clock.now() }, { expiresAt: new Date(t.clock.now().getTime() - 1000) }]) {
      const { d1, d3 } = await tree(null);
      await t.database.db.update(apiKeys).set(change).where(eq(apiKeys.id, d1.id));
      expect((await verify({ key: d3.plaintext, verb: 'call' })).body).toMatchObject({ valid: false, code: 'invalid_api_key' });
      expect((await verify({ key: d3.plaintext, verb: 'call', cost_cents: 5, request_id: rid() })).body).toMatchObject({ valid: false, code: 'invalid_api_key' });
      expect(await spendOf(d3.id)).toBe(0);
    }
  });
});

import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Delegated budgets under load: a debit through a delegated key must fit its own budget and every
 * ancestor's cap and is charged to all of them at once, while a parent's own debits leave its
 * children's reservations intact. Whatever the interleaving, no cap is ever exceeded and every key's
 * spend equals the ledger of its own debits and its subtree's.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

interface Held {
  id: string;
  plaintext: string;
}

let seq = 0;
const rid = () => `deleg-${Date.now()}-${++seq}`;
const idem = () => ({ 'idempotency-key': randomUUID() });
const debit = (key: string, cost: number, requestId = rid()) =>
  call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call', cost_cents: cost, request_id: requestId } });
const self = async (key: Held) => {
  const res = await call(t.app, 'GET', '/v1/agents/self', { token: key.plaintext });
  expect(res.status).toBe(200);
  return res.body.delegation as { reserved_cents: number; available_cents: number | null; depth: number };
};

/** A key minted by the tenant's service key that may delegate. */
async function mintRoot(cap: number | null): Promise<Held> {
  const res = await call(t.app, 'POST', '/v1/keys', {
    token: tenant.serviceKey,
    body: { name: 'root agent', monthly_cap_cents: cap, can_delegate: true },
    headers: idem(),
  });
  expect(res.status).toBe(201);
  return { id: res.body.key.id, plaintext: res.body.key.plaintext_key };
}

/** A delegated key lives within its parent: a day for a child, an hour for a grandchild. */
const delegateRaw = (parent: Held, budget: number, canDelegate = false, ttlSeconds = 86_400) =>
  call(t.app, 'POST', '/v1/agents/self/keys', {
    token: parent.plaintext,
    body: { name: 'sub-agent', permissions: 'full', budget_cents: budget, ttl_seconds: ttlSeconds, can_delegate: canDelegate },
    headers: idem(),
  });

async function delegate(parent: Held, budget: number, canDelegate = false, ttlSeconds = 86_400): Promise<Held> {
  const res = await delegateRaw(parent, budget, canDelegate, ttlSeconds);
  expect(res.status).toBe(201);
  expect(res.body.delegation).toMatchObject({ parent_key_id: parent.id, budget_cents: budget });
  return { id: res.body.key.id, plaintext: res.body.key.plaintext_key };
}

/**
 * A key's stored spend, and what the ledger says it must be: the cost of its own debits and of every
 * debit made through a key below it (whose delegation_path names its agent).
 */
async function spendAndLedger(id: string): Promise<{ spend: number; ledger: number; rows: number }> {
  const [r] = await queryRows<{ spend: number | string; ledger: number | string; rows: number | string }>(
    t.database.db,
    sql`select k.monthly_spend_cents as spend,
               coalesce(sum(l.cost_cents), 0) as ledger, count(l.id) as rows
          from api_keys k
          left join api_keys d on d.id = k.id or k.agent_id = any(d.delegation_path)
          left join spend_ledger l on l.api_key_id = d.id
         where k.id = ${id}::uuid
         group by k.id, k.monthly_spend_cents`,
  );
  return { spend: Number(r!.spend), ledger: Number(r!.ledger), rows: Number(r!.rows) };
}

async function expectSpend(key: Held, spend: number): Promise<void> {
  const s = await spendAndLedger(key.id);
  expect(s.spend).toBe(spend);
  expect(s.ledger).toBe(spend);
}

describe('delegated budgets under concurrency', () => {
  it('150 concurrent 10-cent debits over a 1000-cent parent and two 400-cent children: caps bind, spend equals the ledger', async () => {
    const parent = await mintRoot(1000);
    const kids = [await delegate(parent, 400), await delegate(parent, 400)];
    expect(await self(parent)).toMatchObject({ reserved_cents: 800, available_cents: 200 });
    const holders = [parent, ...kids];
    // Interleaved: 50 on each key, all in flight at once.
    const calls = Array.from({ length: 150 }, (_, i) => ({ who: i % 3, requestId: `burst-${i}-${rid()}` }));
    const results = await Promise.all(calls.map((c) => debit(holders[c.who]!.plaintext, 10, c.requestId)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const validOf = (who: number) => results.filter((r, i) => calls[i]!.who === who && r.body.valid);
    for (const [i, r] of results.entries()) {
      if (r.body.valid) {
        expect(r.body.debit).toMatchObject({ cost_cents: 10, replayed: false });
        // Every debit left its key within its cap, at every step.
        expect(r.body.key.monthly_spend_cents).toBeLessThanOrEqual(calls[i]!.who === 0 ? 1000 : 400);
      } else {
        expect(r.body).toMatchObject({ valid: false, code: 'agent_cap_exceeded', status: 402 });
      }
    }
    // Each child fits exactly 40 debits, serialised (distinct running totals, none lost); the
    // parent's own debits fit only beside the 800 its children hold: 20.
    for (const who of [1, 2]) {
      const ok = validOf(who);
      expect(ok).toHaveLength(40);
      expect(ok.map((r) => r.body.key.monthly_spend_cents).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => (i + 1) * 10));
    }
    expect(validOf(0)).toHaveLength(20);
    expect(results.filter((r) => r.body.valid)).toHaveLength(100);
    // The spend matches the valid answers, and every key's spend matches its subtree's ledger.
    await expectSpend(parent, 1000);
    for (const kid of kids) await expectSpend(kid, 400);
    expect((await spendAndLedger(parent.id)).rows).toBe(100);
    expect(await self(parent)).toMatchObject({ reserved_cents: 0, available_cents: 0 });
  });

  it("delegations racing the parent's own debits never promise more than its cap", async () => {
    const parent = await mintRoot(1000);
    // 800 asked for as budgets and 600 as debits, all at once: 1400 against a cap of 1000.
    const [delegations, debits] = await Promise.all([
      Promise.all(Array.from({ length: 8 }, () => delegateRaw(parent, 100))),
      Promise.all(Array.from({ length: 60 }, () => debit(parent.plaintext, 10))),
    ]);
    const granted = delegations.filter((r) => r.status === 201).length;
    for (const r of delegations.filter((x) => x.status !== 201)) {
      expect(r.status).toBe(402);
      expect(errorCode(r)).toBe('agent_cap_exceeded');
    }
    const debited = debits.filter((r) => r.body.valid).length;
    for (const r of debits.filter((x) => !x.body.valid)) expect(r.body.code).toBe('agent_cap_exceeded');
    // Whatever the order, the loser of the last race could not fit: the cap is met exactly.
    expect(granted * 100 + debited * 10).toBe(1000);
    await expectSpend(parent, debited * 10);
    expect(await self(parent)).toMatchObject({ reserved_cents: granted * 100, available_cents: 0 });
  });

  it('a parent without a cap still holds each child to its budget, and is charged its debits', async () => {
    const parent = await mintRoot(null);
    const kid = await delegate(parent, 50);
    const results = await Promise.all(Array.from({ length: 12 }, () => debit(kid.plaintext, 10)));
    expect(results.filter((r) => r.body.valid)).toHaveLength(5);
    for (const r of results.filter((x) => !x.body.valid)) expect(r.body).toMatchObject({ code: 'agent_cap_exceeded', status: 402 });
    await expectSpend(kid, 50);
    await expectSpend(parent, 50);
    // Uncapped: nothing to run out of, and a spent child reserves nothing.
    expect(await self(parent)).toMatchObject({ reserved_cents: 0, available_cents: null });
    expect((await debit(parent.plaintext, 5000)).body.valid).toBe(true);
    await expectSpend(parent, 5050);
  });
});

describe('budgets returned and refused', () => {
  it("a revoked child's unspent budget returns to its parent, which can debit and delegate it", async () => {
    const parent = await mintRoot(1000);
    const kid = await delegate(parent, 400);
    expect((await debit(kid.plaintext, 100)).body.valid).toBe(true);
    // 1000 less the child's 100 (charged to the parent too) and the 300 it still holds.
    expect(await self(parent)).toMatchObject({ reserved_cents: 300, available_cents: 600 });
    // The parent's own debit must leave the child's 300 alone.
    expect((await debit(parent.plaintext, 601)).body).toMatchObject({ valid: false, code: 'agent_cap_exceeded' });
    const tooMuch = await delegateRaw(parent, 601);
    expect(tooMuch.status).toBe(402);
    expect(errorCode(tooMuch)).toBe('agent_cap_exceeded');
    // What the parent spent (its child's 100) or holds back (the child's 300), as a refused debit names it; 600 left.
    expect(tooMuch.body.error.details[0]).toMatchObject({ field: 'budget_cents', available_cents: 600, budget_cents: 601, spent_cents: 400, cap_cents: 1000 });

    const revoked = await call(t.app, 'DELETE', `/v1/agents/self/keys/${kid.id}`, { token: parent.plaintext });
    expect(revoked.status).toBe(200);
    expect(revoked.body.key).toMatchObject({ id: kid.id, revoked_at: expect.any(String) });
    // Up by the budget less what the child spent: 400 − 100.
    expect(await self(parent)).toMatchObject({ reserved_cents: 0, available_cents: 900 });
    expect((await debit(kid.plaintext, 1)).body).toMatchObject({ valid: false, code: 'invalid_api_key' });
    // The 900 is the parent's again: part delegated, the rest debited, and not a cent more.
    const next = await delegate(parent, 500);
    expect((await debit(parent.plaintext, 400)).body.valid).toBe(true);
    expect((await debit(parent.plaintext, 1)).body).toMatchObject({ valid: false, code: 'agent_cap_exceeded' });
    expect((await debit(next.plaintext, 500)).body.valid).toBe(true);
    await expectSpend(parent, 1000);
    await expectSpend(kid, 100);
    await expectSpend(next, 500);
  });

  it("a grandchild's debit that fits its own budget is refused when an ancestor's cap would be exceeded", async () => {
    const root = await mintRoot(1000);
    const child = await delegate(root, 600, true);
    const grandchild = await delegate(child, 300, false, 3600);
    expect((await self(grandchild)).depth).toBe(2);
    expect((await debit(grandchild.plaintext, 100)).body.valid).toBe(true);
    const lowered = await call(t.app, 'PATCH', `/v1/keys/${root.id}`, { token: tenant.serviceKey, body: { monthly_cap_cents: 150 } });
    expect(lowered.status).toBe(200);
    // The grandchild has 200 left and its parent 500, but the root only 50.
    const refused = await debit(grandchild.plaintext, 100);
    expect(refused.status).toBe(200);
    expect(refused.body).toMatchObject({ valid: false, code: 'agent_cap_exceeded', status: 402 });
    expect(refused.body.error.error.code).toBe('agent_cap_exceeded');
    for (const k of [root, child, grandchild]) await expectSpend(k, 100);
    // What the root still has fits, exactly.
    expect((await debit(grandchild.plaintext, 50)).body.valid).toBe(true);
    expect((await debit(grandchild.plaintext, 1)).body).toMatchObject({ valid: false, code: 'agent_cap_exceeded' });
    for (const k of [root, child, grandchild]) await expectSpend(k, 150);
  });

  it('a request_id replayed through a delegated key debits nothing twice, on the key or any ancestor', async () => {
    const root = await mintRoot(1000);
    const child = await delegate(root, 600, true);
    const grandchild = await delegate(child, 300, false, 3600);
    const requestId = rid();
    // The same request sent ten times at once, then once more: one debit.
    const burst = await Promise.all(Array.from({ length: 10 }, () => debit(grandchild.plaintext, 25, requestId)));
    expect(burst.every((r) => r.body.valid)).toBe(true);
    expect(burst.filter((r) => !r.body.debit.replayed)).toHaveLength(1);
    const again = await debit(grandchild.plaintext, 25, requestId);
    expect(again.body).toMatchObject({ valid: true, debit: { cost_cents: 25, replayed: true } });
    expect(again.body.key.monthly_spend_cents).toBe(25);
    for (const k of [root, child, grandchild]) {
      await expectSpend(k, 25);
      expect((await spendAndLedger(k.id)).rows).toBe(1);
    }
  });
});

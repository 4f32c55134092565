import { eq, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { apiKeys } from '../../src/db/schema.js';
import { cycleStartFor, SPEND_CYCLE_MS } from '../../src/domain/keys/key-object.js';
import { agentLedgerSum } from '../../src/db/queries/spend.queries.js';
import { mintChild, revokeChild, rotateChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, createTenant, createTestApp, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const verifyOn = (app: TestApp, body: unknown) => call(app.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
const verify = (body: unknown) => verifyOn(t, body);
let seq = 0;
const rid = () => `req-${Date.now()}-${++seq}`;

async function keyRow(app: TestApp, id: string) {
  const [row] = await app.database.db.select().from(apiKeys).where(eq(apiKeys.id, id));
  return row!;
}

/** Every ledger row of one key, whatever the cycle. */
async function ledgerOfKey(app: TestApp, id: string): Promise<{ total: number; rows: number }> {
  const [r] = await queryRows<{ total: string | number; n: string | number }>(
    app.database.db,
    sql`select coalesce(sum(cost_cents), 0) as total, count(*) as n from spend_ledger where api_key_id = ${id}::uuid`,
  );
  return { total: Number(r!.total), rows: Number(r!.n) };
}

/** The invariant: the active key's spend for its cycle equals the agent's ledger sum for that cycle. */
async function expectSpendMatchesLedger(app: TestApp, id: string, expected: number) {
  const row = await keyRow(app, id);
  expect(row.monthlySpendCents).toBe(expected);
  expect(row.spendCycleStart).not.toBeNull();
  expect(await agentLedgerSum(app.database.db, row.accountId, row.agentId, row.spendCycleStart!)).toBe(expected);
}

describe('monthly caps and exact spend', () => {
  it('100 concurrent debits of 10 cents against a 500-cent cap: exactly 50 succeed, spend and ledger are 500', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 500 });
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => verify({ key: k.plaintext, verb: 'call', cost_cents: 10, request_id: `burst-${i}` })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const ok = results.filter((r) => r.body.valid);
    const refused = results.filter((r) => !r.body.valid);
    expect(ok).toHaveLength(50);
    expect(refused).toHaveLength(50);
    for (const r of refused) {
      expect(r.body).toMatchObject({ code: 'agent_cap_exceeded', status: 402 });
      expect(r.body.error.error.code).toBe('agent_cap_exceeded');
      expect(r.body.error.error.details[0]).toMatchObject({ spent_cents: 500, cap_cents: 500 });
    }
    for (const r of ok) expect(r.body.debit).toMatchObject({ cost_cents: 10, replayed: false });
    // Each successful debit saw a distinct running total: they were serialised, none lost.
    expect(ok.map((r) => r.body.key.monthly_spend_cents).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => (i + 1) * 10));
    await expectSpendMatchesLedger(t, k.id, 500);
    expect(await ledgerOfKey(t, k.id)).toEqual({ total: 500, rows: 50 });
  });

  it('a burst of debits uses at most one connection at a time (one debit statement in flight), none once done', async () => {
    const k = await mintChild(t, tenant, {});
    const pool = t.database.pool;
    let peak = 0;
    const watch = setInterval(() => pool && (peak = Math.max(peak, pool.totalCount - pool.idleCount)), 1);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => verify({ key: k.plaintext, verb: 'call', cost_cents: 1, request_id: `held-${i}` })),
    ).finally(() => clearInterval(watch));
    expect(results.map((r) => r.body.valid)).toEqual(Array(200).fill(true));
    await expectSpendMatchesLedger(t, k.id, 200);
    if (pool) {
      // Server mode: the batches ran one statement at a time, and their connection is back in the pool.
      expect(peak).toBe(1);
      expect(pool.totalCount - pool.idleCount).toBe(0);
    } else {
      // Embedded mode has one in-process connection and no pool to hold from.
      expect(t.database.kind).toBe('pglite');
    }
  });

  it('debits of many keys at once (they share batch statements): each key keeps its own cap, order and replays', async () => {
    // Five keys, 30 debits each, interleaved and all in flight together: the statements that apply
    // them carry several keys each. Caps of 200: exactly 20 per key fit. Every fifth request repeats
    // an earlier request_id of the same key (a retry): it must replay, never debit twice.
    const keys = await Promise.all(Array.from({ length: 5 }, () => mintChild(t, tenant, { monthlyCapCents: 200 })));
    const calls = Array.from({ length: 150 }, (_, i) => {
      const k = i % 5;
      const n = Math.floor(i / 5);
      return { k, n, body: { key: keys[k]!.plaintext, verb: 'call', cost_cents: 10, request_id: `multi-${k}-${n % 5 === 4 ? n - 1 : n}` } };
    });
    const results = await Promise.all(calls.map((c) => verify(c.body)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    for (let k = 0; k < 5; k++) {
      const mine = results.filter((_, i) => calls[i]!.k === k);
      const debited = mine.filter((r) => r.body.valid && !r.body.debit.replayed);
      // 24 distinct request_ids per key, 20 fit under the cap.
      expect(debited).toHaveLength(20);
      expect(debited.map((r) => r.body.key.monthly_spend_cents).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 10));
      for (const r of mine.filter((x) => !x.body.valid)) expect(r.body.code).toBe('agent_cap_exceeded');
      await expectSpendMatchesLedger(t, keys[k]!.id, 200);
      expect(await ledgerOfKey(t, keys[k]!.id)).toEqual({ total: 200, rows: 20 });
    }
  });

  it('a cost that does not fit is refused with the details and debits nothing; a smaller one still fits', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 100 });
    expect((await verify({ key: k.plaintext, verb: 'call', cost_cents: 70, request_id: rid() })).body.valid).toBe(true);
    const res = await verify({ key: k.plaintext, verb: 'call', cost_cents: 31, request_id: rid() });
    const resetAt = new Date(cycleStartFor(k.row.cycleAnchor, t.clock.now()).getTime() + SPEND_CYCLE_MS).toISOString();
    expect(res.body).toMatchObject({ valid: false, code: 'agent_cap_exceeded', status: 402, key: { id: k.id, monthly_spend_cents: 70 } });
    expect(res.body.error).toEqual({
      error: {
        code: 'agent_cap_exceeded',
        message: "The key's monthly spending cap would be exceeded.",
        details: [{ message: expect.any(String), spent_cents: 70, cap_cents: 100, cycle_reset_at: resetAt }],
      },
    });
    expect((await verify({ key: k.plaintext, verb: 'call', cost_cents: 30, request_id: rid() })).body.valid).toBe(true);
    await expectSpendMatchesLedger(t, k.id, 100);
  });

  it('a key without a cap debits without limit, still exactly', async () => {
    const k = await mintChild(t, tenant);
    for (let i = 0; i < 3; i++) expect((await verify({ key: k.plaintext, verb: 'sms', cost_cents: 40_000_000, request_id: rid() })).body.valid).toBe(true);
    await expectSpendMatchesLedger(t, k.id, 120_000_000);
  });

  it('a retried request_id debits once and answers as the original did', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 25 });
    const body = { key: k.plaintext, verb: 'call', cost_cents: 10, request_id: 'call-0001' };
    const first = await verify(body);
    expect(first.body).toMatchObject({ valid: true, debit: { request_id: 'call-0001', cost_cents: 10, replayed: false } });
    for (let i = 0; i < 3; i++) {
      const again = await verify(body);
      expect(again.body).toMatchObject({ valid: true, code: 'valid', debit: { request_id: 'call-0001', cost_cents: 10, replayed: true } });
      expect(again.body.key.monthly_spend_cents).toBe(10);
    }
    // Concurrent retries of one new request: one debit.
    const burst = await Promise.all(Array.from({ length: 20 }, () => verify({ ...body, request_id: 'call-0002' })));
    expect(burst.every((r) => r.body.valid)).toBe(true);
    expect(burst.filter((r) => r.body.debit.replayed === false)).toHaveLength(1);
    await expectSpendMatchesLedger(t, k.id, 20);
    // The key is now 5 cents from its cap: a retry of a debited request still answers valid.
    expect((await verify({ ...body, request_id: 'call-0003' })).body.code).toBe('agent_cap_exceeded');
    expect((await verify(body)).body).toMatchObject({ valid: true, debit: { replayed: true } });
    // The same request_id with another cost is the caller's bug: 409, nothing debited.
    const reused = await verify({ ...body, cost_cents: 5 });
    expect(reused.status).toBe(409);
    expect(errorCode(reused)).toBe('idempotency_key_reused');
    await expectSpendMatchesLedger(t, k.id, 20);
    expect(await ledgerOfKey(t, k.id)).toEqual({ total: 20, rows: 2 });
  });

  it('in one burst, a request_id sent with two costs debits once; the other cost is refused 409', async () => {
    const k = await mintChild(t, tenant);
    const res = await Promise.all([10, 20, 10, 20, 10, 20].map((c) => verify({ key: k.plaintext, verb: 'call', cost_cents: c, request_id: 'dup-1' })));
    const fresh = res.filter((r) => r.status === 200 && r.body.debit.replayed === false);
    expect(fresh).toHaveLength(1);
    const cost = fresh[0]!.body.debit.cost_cents as number;
    for (const r of res) {
      if (r.status === 200) expect(r.body.debit.cost_cents).toBe(cost);
      else expect(errorCode(r)).toBe('idempotency_key_reused');
    }
    expect(res.filter((r) => r.status === 200)).toHaveLength(3);
    await expectSpendMatchesLedger(t, k.id, cost);
  });

  it('request ids are per agent: another key may use the same request_id', async () => {
    const a = await mintChild(t, tenant);
    const b = await mintChild(t, tenant);
    expect((await verify({ key: a.plaintext, verb: 'call', cost_cents: 7, request_id: 'shared-1' })).body.debit.replayed).toBe(false);
    expect((await verify({ key: b.plaintext, verb: 'call', cost_cents: 7, request_id: 'shared-1' })).body.debit.replayed).toBe(false);
    await expectSpendMatchesLedger(t, a.id, 7);
    await expectSpendMatchesLedger(t, b.id, 7);
  });

  it('two keys using the same request_ids in one burst (shared statements) each debit every one of them', async () => {
    // The statement finds a retry within itself among the key's own debits of the call only: the
    // other key's debit of the same request_id, earlier in the same statement, is not a replay.
    const a = await mintChild(t, tenant);
    const b = await mintChild(t, tenant);
    const calls = Array.from({ length: 40 }, (_, i) => ({ key: i % 2 === 0 ? a : b, request_id: `both-${i >> 1}` }));
    const res = await Promise.all(calls.map((c) => verify({ key: c.key.plaintext, verb: 'call', cost_cents: 3, request_id: c.request_id })));
    expect(res.map((r) => r.body.debit?.replayed)).toEqual(calls.map(() => false));
    for (const k of [a, b]) {
      const mine = res.filter((_, i) => calls[i]!.key === k);
      expect(mine.every((r) => r.body.key.id === k.id)).toBe(true);
      expect(mine.map((r) => r.body.key.monthly_spend_cents).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 3));
      await expectSpendMatchesLedger(t, k.id, 60);
    }
  });

  it('spend follows the agent across a rotation, and the ledger of the whole chain still sums to it', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 100 });
    expect((await verify({ key: k.plaintext, verb: 'call', cost_cents: 60, request_id: 'before-rotation' })).body.valid).toBe(true);
    const next = await rotateChild(t, tenant, k.id);
    // The old key is gone, debits included.
    expect((await verify({ key: k.plaintext, verb: 'call', cost_cents: 1, request_id: rid() })).body.code).toBe('invalid_api_key');
    // The cap is not reset by rotating: 60 spent, 50 more does not fit.
    const over = await verify({ key: next.plaintext, verb: 'call', cost_cents: 50, request_id: rid() });
    expect(over.body.code).toBe('agent_cap_exceeded');
    expect(over.body.error.error.details[0]).toMatchObject({ spent_cents: 60, cap_cents: 100 });
    // A retry of the old key's request made with the successor debits nothing.
    const retry = await verify({ key: next.plaintext, verb: 'call', cost_cents: 60, request_id: 'before-rotation' });
    expect(retry.body).toMatchObject({ valid: true, debit: { replayed: true }, key: { monthly_spend_cents: 60 } });
    expect((await verify({ key: next.plaintext, verb: 'call', cost_cents: 40, request_id: rid() })).body.valid).toBe(true);
    // Two rotations deep.
    const third = await rotateChild(t, tenant, next.id);
    expect((await verify({ key: third.plaintext, verb: 'call', cost_cents: 60, request_id: 'before-rotation' })).body.debit.replayed).toBe(true);
    await expectSpendMatchesLedger(t, third.id, 100);
    expect(await ledgerOfKey(t, k.id)).toEqual({ total: 60, rows: 1 });
    expect(await ledgerOfKey(t, next.id)).toEqual({ total: 40, rows: 1 });
    expect(await ledgerOfKey(t, third.id)).toEqual({ total: 0, rows: 0 });
  });

  it('a refused verification debits nothing: revoked, wrong tier, wrong line', async () => {
    const line = '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50';
    const smsOnly = await mintChild(t, tenant, { permissions: 'sms_only', lineId: line, monthlyCapCents: 100 });
    expect((await verify({ key: smsOnly.plaintext, verb: 'call', line_id: line, cost_cents: 10, request_id: rid() })).body.code).toBe('agent_permission_denied');
    expect((await verify({ key: smsOnly.plaintext, verb: 'sms', line_id: '0e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9', cost_cents: 10, request_id: rid() })).body.code).toBe('agent_scope_error');
    await revokeChild(t, tenant, smsOnly.id);
    expect((await verify({ key: smsOnly.plaintext, verb: 'sms', line_id: line, cost_cents: 10, request_id: rid() })).body.code).toBe('invalid_api_key');
    expect(await ledgerOfKey(t, smsOnly.id)).toEqual({ total: 0, rows: 0 });
    expect((await keyRow(t, smsOnly.id)).monthlySpendCents).toBe(0);
  });
});

describe('spend cycles', () => {
  it('are 30 days from the agent’s first key; the first debit of a new cycle resets the spend', async () => {
    const own = await createTestApp();
    try {
      const tn = await createTenant(own);
      const k = await mintChild(own, tn, { monthlyCapCents: 500 });
      const anchor = k.row.cycleAnchor;
      expect((await verifyOn(own, { key: k.plaintext, verb: 'call', cost_cents: 450, request_id: 'c1-a' })).body.valid).toBe(true);
      own.clock.advance(SPEND_CYCLE_MS - 60_000); // a minute before the cycle ends
      const full = await verifyOn(own, { key: k.plaintext, verb: 'call', cost_cents: 100, request_id: 'c1-b' });
      expect(full.body.error.error.details[0]).toMatchObject({
        spent_cents: 450,
        cycle_reset_at: new Date(anchor.getTime() + SPEND_CYCLE_MS).toISOString(),
      });

      own.clock.advance(60_000); // the new cycle starts exactly 30 days after the anchor
      // Before any debit, the key already reads as 0 spent this cycle; the stored row still holds the old cycle.
      const read = await verifyOn(own, { key: k.plaintext, verb: 'read' });
      expect(read.body.key.monthly_spend_cents).toBe(0);
      expect((await keyRow(own, k.id)).monthlySpendCents).toBe(450);

      const first = await verifyOn(own, { key: k.plaintext, verb: 'call', cost_cents: 300, request_id: 'c2-a' });
      expect(first.body).toMatchObject({ valid: true, key: { monthly_spend_cents: 300 } });
      const row = await keyRow(own, k.id);
      expect(row.spendCycleStart!.getTime()).toBe(anchor.getTime() + SPEND_CYCLE_MS);
      await expectSpendMatchesLedger(own, k.id, 300);
      // The old cycle's ledger is untouched (append-only) and still sums to the old spend.
      expect(await agentLedgerSum(own.database.db, row.accountId, row.agentId, anchor)).toBe(450);
      // A request id from the old cycle is still a retry, not a new debit.
      expect((await verifyOn(own, { key: k.plaintext, verb: 'call', cost_cents: 450, request_id: 'c1-a' })).body.debit.replayed).toBe(true);
      await expectSpendMatchesLedger(own, k.id, 300);

      // The anchor survives rotation: the successor's cycle is the agent's, not its own creation's.
      own.clock.advance(10 * 24 * 3600 * 1000);
      const next = await rotateChild(own, tn, k.id);
      expect(next.row.cycleAnchor.getTime()).toBe(anchor.getTime());
      own.clock.advance(20 * 24 * 3600 * 1000); // day 60: the third cycle
      const third = await verifyOn(own, { key: next.plaintext, verb: 'call', cost_cents: 500, request_id: 'c3-a' });
      expect(third.body).toMatchObject({ valid: true, key: { monthly_spend_cents: 500 } });
      expect((await keyRow(own, next.id)).spendCycleStart!.getTime()).toBe(anchor.getTime() + 2 * SPEND_CYCLE_MS);
      await expectSpendMatchesLedger(own, next.id, 500);
    } finally {
      await own.close();
    }
  });
});

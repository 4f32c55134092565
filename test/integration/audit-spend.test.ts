import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { agentLedgerSum } from '../../src/db/queries/spend.queries.js';
import { queryRows } from '../../src/db/statements.js';
import { EVENT_TYPES } from '../../src/domain/audit/events.js';
import { cycleStartFor } from '../../src/domain/keys/key-object.js';
import { mintChild, rotateChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Issue 30: the spend ledger's debits in the audit feed as Saperly's billing_transaction items,
 * merged with the compliance events under one order and cursor; and the `exclude` filter.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

let seq = 0;
const rid = () => `feed-${Date.now()}-${++seq}`;
const debit = (key: string, cost: number, requestId = rid()) =>
  call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call', cost_cents: cost, request_id: requestId } });
const audit = (token: string, query = '') => call(t.app, 'GET', `/v1/audit${query}`, { token });
const billing = (events: any[]) => events.filter((e) => e.type === 'billing_transaction');

describe('billing_transaction items', () => {
  it("the ledger's sum for a cycle equals the sum of the feed's billing amounts for the key", async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 1000 });
    const costs = [120, 80, 300, 700, 45, 5, 999];
    for (const c of costs) await debit(k.plaintext, c);
    const replayed = rid();
    await debit(k.plaintext, 50, replayed);
    await debit(k.plaintext, 50, replayed);
    const feed = await audit(k.plaintext, '?event_types=billing_transaction&limit=500');
    expect(feed.status).toBe(200);
    const items = feed.body.events;
    expect(items.every((e: any) => e.type === 'billing_transaction')).toBe(true);
    const fromFeed = items.reduce((s: number, e: any) => s - e.data.amount_cents, 0);
    const cycle = cycleStartFor(k.row.cycleAnchor, t.clock.now());
    const ledger = await agentLedgerSum(t.database.db, k.row.accountId, k.row.agentId, cycle);
    // 120 + 80 + 300 fit, 700 does not, 45 and 5 fit, 999 does not, 50 once: 600.
    expect(ledger).toBe(600);
    expect(fromFeed).toBe(ledger);
    // Debits within one millisecond tie on created_at (then ordered by id), so find rather than index.
    const newest = items.find((e: any) => e.data.request_id === replayed);
    expect(newest).toEqual({
      type: 'billing_transaction',
      id: expect.any(String),
      created_at: newest.createdAt,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      data: { transaction_type: 'usage_debit', amount_cents: -50, request_id: replayed, api_key_id: k.id, spent_after_cents: 600, cap_cents: 1000 },
    });
    expect(items.map((e: any) => e.data.spent_after_cents).sort((x: number, y: number) => y - x)).toEqual([600, 550, 545, 500, 200, 120]);
  });

  it('are merged with the events newest first under one cursor; audit_read counts both', async () => {
    const k = await mintChild(t, tenant);
    for (let i = 0; i < 4; i++) {
      await debit(k.plaintext, 10 + i);
      await call(t.app, 'GET', '/v1/agents/self', { token: k.plaintext });
    }
    // exclude=audit_read keeps the feed still while it is walked (each read adds an audit_read).
    const all = await audit(k.plaintext, '?exclude=audit_read&limit=500');
    const ids = all.body.events.map((e: any) => e.id);
    expect(billing(all.body.events)).toHaveLength(4);
    expect(all.body.events.filter((e: any) => e.data.event_type === 'agent_self_read')).toHaveLength(4);
    const order = all.body.events.map((e: any) => `${e.created_at} ${e.id}`);
    expect(order).toEqual([...order].sort().reverse());
    // The audit_read of that read counts both kinds of item.
    const recorded = (await audit(k.plaintext, '?limit=1&event_types=compliance_event')).body.events[0];
    expect(recorded.data.event_type).toBe('audit_read');
    expect(recorded.data.details).toMatchObject({ count: ids.length, exclude: ['audit_read'], limit: 500 });
    const walked: string[] = [];
    let before: string | null = null;
    do {
      const page: any = await audit(k.plaintext, `?exclude=audit_read&limit=3${before ? `&before=${before}` : ''}`);
      expect(page.status).toBe(200);
      walked.push(...page.body.events.map((e: any) => e.id));
      before = page.body.next_before;
    } while (before);
    expect(walked).toEqual(ids);
  });

  it("the newest key of a chain shows its predecessor's debits; a key with a successor only its own", async () => {
    const a = await mintChild(t, tenant);
    await debit(a.plaintext, 11);
    const b = await rotateChild(t, tenant, a.id);
    await debit(b.plaintext, 22);
    const keysIn = async (token: string, apiKeyId = 'self') =>
      billing((await audit(token, `?event_types=billing_transaction&api_key_id=${apiKeyId}`)).body.events).map((e: any) => [e.data.api_key_id, -e.data.amount_cents]);
    expect(await keysIn(b.plaintext)).toEqual([[b.id, 22], [a.id, 11]]);
    expect(await keysIn(b.plaintext, a.id)).toEqual([[a.id, 11]]);
    const c = await rotateChild(t, tenant, b.id);
    expect(await keysIn(c.plaintext)).toEqual([[b.id, 22]]);
    expect(await keysIn(c.plaintext, b.id)).toEqual([[b.id, 22]]);
  });

  it('a cursor may name a debit; a debit of another account is no cursor', async () => {
    const k = await mintChild(t, tenant);
    await debit(k.plaintext, 1);
    await debit(k.plaintext, 2);
    const items = billing((await audit(k.plaintext, '?event_types=billing_transaction')).body.events);
    const after = await audit(k.plaintext, `?event_types=billing_transaction&before=${items[0].id}`);
    expect(billing(after.body.events).map((e: any) => e.data.amount_cents)).toEqual([-1]);
    const [foreign] = await queryRows<{ id: string }>(t.database.db, sql`select id from spend_ledger where account_id <> ${tenant.accountId}::uuid limit 1`);
    if (foreign) {
      const res = await audit(k.plaintext, `?before=${foreign.id}`);
      expect(res.status).toBe(422);
    }
  });
});

describe('exclude', () => {
  it('leaves out the named compliance event types and records the filter in the audit_read', async () => {
    const k = await mintChild(t, tenant);
    await debit(k.plaintext, 7);
    await audit(k.plaintext);
    await call(t.app, 'GET', '/v1/agents/self', { token: k.plaintext });
    const res = await audit(k.plaintext, '?exclude=audit_read,agent_self_read');
    expect(res.status).toBe(200);
    const types = res.body.events.map((e: any) => e.data.event_type ?? e.type);
    expect(types).toEqual(['billing_transaction', 'agent_key_created']);
    const next = await audit(k.plaintext, '?limit=1');
    expect(next.body.events[0].data.details).toMatchObject({ exclude: ['audit_read', 'agent_self_read'], count: 2 });
  });

  it('an unknown name is 422 naming the allowed set; an empty value is no filter', async () => {
    const k = await mintChild(t, tenant);
    const bad = await audit(k.plaintext, '?exclude=audit_read,nope');
    expect(bad.status).toBe(422);
    expect(errorCode(bad)).toBe('validation_error');
    expect(bad.body.error.details).toEqual([
      { field: 'exclude', message: expect.stringContaining(`unknown compliance event types: nope; allowed: ${EVENT_TYPES.join(', ')}`), allowed: [...EVENT_TYPES] },
    ]);
    const billingName = await audit(k.plaintext, '?exclude=billing_transaction');
    expect(billingName.status).toBe(422);
    const empty = await audit(k.plaintext, '?exclude=');
    expect(empty.status).toBe(200);
    expect(empty.body.events.map((e: any) => e.data.event_type)).toEqual(['agent_key_created']);
  });
});

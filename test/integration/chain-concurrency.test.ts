import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { authenticate, type ServicePrincipal } from '../../src/domain/auth/auth.service.js';
import { verifyAccountChain } from '../../src/domain/audit/chain.service.js';
import { listChildKeys } from '../../src/domain/keys/keys.service.js';
import { mintAgent } from '../support/agents.js';
import { call, createTenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
it.beforeAll(({ app }) => {
  t = app;
});

/** The account's seqs in order, and its chain head: a gap-free chain is exactly 1..n with head n. */
async function chainState(accountId: string) {
  const db = t.database.db;
  const seqs = await queryRows<{ seq: string }>(db, sql`select seq from compliance_events where account_id = ${accountId} order by seq`);
  const [head] = await queryRows<{ chain_seq: string }>(db, sql`select chain_seq from accounts where id = ${accountId}`);
  return { seqs: seqs.map((r) => Number(r.seq)), head: Number(head!.chain_seq) };
}

describe('concurrent writers in one account keep the chain gap-free and valid', () => {
  it('50 parallel audit reads', async () => {
    const tenant = await createTenant(t);
    const agent = await mintAgent(t, tenant.serviceKey);
    const before = await chainState(tenant.accountId);
    const results = await Promise.all(Array.from({ length: 50 }, () => call(t.app, 'GET', '/v1/audit?limit=5', { token: agent.apiKey })));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    const after = await chainState(tenant.accountId);
    expect(after.head).toBe(before.head + 50);
    expect(after.seqs).toEqual(Array.from({ length: after.head }, (_, i) => i + 1));
    const v = await verifyAccountChain(t.database.db, tenant.accountId);
    expect(v).toEqual({ accountId: tenant.accountId, events: after.head, firstBreak: null });
    // Every read was recorded, once.
    const feed = await call(t.app, 'GET', '/v1/audit?limit=500', { token: agent.apiKey });
    expect(feed.body.events.filter((e: any) => e.data.event_type === 'audit_read')).toHaveLength(50);
  });

  it('50 parallel list reads, through the service and the route', async () => {
    const tenant = await createTenant(t);
    const db = t.database.db;
    const principal = (await authenticate(db, tenant.serviceKey, 'service', { readOnly: true, now: t.clock.now() })) as ServicePrincipal;
    const ctx = { actor: { kind: 'service_key' as const, keyId: principal.id, keyPrefix: principal.keyPrefix }, meta: { requestId: null, ip: null, userAgent: null }, now: t.clock.now() };
    const before = await chainState(tenant.accountId);
    await Promise.all([
      ...Array.from({ length: 25 }, () => listChildKeys(t.store, principal, { limit: 10, offset: 0 }, ctx)),
      ...Array.from({ length: 25 }, () => call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey })),
    ]);
    const after = await chainState(tenant.accountId);
    expect(after.head).toBe(before.head + 50);
    expect(after.seqs).toEqual(Array.from({ length: after.head }, (_, i) => i + 1));
    expect((await verifyAccountChain(db, tenant.accountId)).firstBreak).toBeNull();
  });
});

import { and, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, type TestApp } from '../support/harness.js';
import { mintChild, rotateChild } from '../support/child-keys.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let n = 0;
it.beforeAll(({ app }) => {
  t = app;
});

const lineage = (token: string, id: string) => call(t.app, 'GET', `/v1/keys/${id}/lineage`, { token });
const rotateOverHttp = (token: string, id: string) =>
  call(t.app, 'POST', `/v1/keys/${id}/rotate`, { token, headers: { 'idempotency-key': `lineage-${++n}-${Math.random()}` } });
const verify = (key: string, cost: number, requestId: string) =>
  call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call', cost_cents: cost, request_id: requestId } });

describe('GET /v1/keys/{id}/lineage', () => {
  it('the whole chain, oldest first, with how each key was made, from any key of it; the spend is the agent’s', async () => {
    const own = await createTenant(t);
    const first = await mintChild(t, own, { monthlyCapCents: 1000, selfRotation: true });
    expect((await verify(first.plaintext, 30, `l-${first.id}`)).body.valid).toBe(true);
    t.clock.advance(1000);
    const second = await rotateOverHttp(own.serviceKey, first.id);
    expect(second.status).toBe(201);
    t.clock.advance(1000);
    const self = await call(t.app, 'POST', '/v1/agents/self/rotate-key', {
      token: second.body.key.plaintext_key,
      body: { rotationSecret: first.rotationSecret },
    });
    expect(self.status).toBe(200);
    // The self-rotation answer names the agent, not the new key: the chain's third key is it.
    const newestId: string = (await lineage(own.serviceKey, first.id)).body.keys[2].key.id;
    expect((await verify(self.body.apiKey, 20, `l-${newestId}`)).body.valid).toBe(true);

    for (const id of [first.id, second.body.key.id, newestId]) {
      const res = await lineage(own.serviceKey, id);
      expect(res.status).toBe(200);
      expect(res.body.agent_id).toBe(first.id);
      expect(res.body.keys.map((e: { key: { id: string } }) => e.key.id)).toEqual([first.id, second.body.key.id, newestId]);
      expect(res.body.keys.map((e: { rotated_by: string | null }) => e.rotated_by)).toEqual([null, 'service_key', 'self']);
      expect(res.body.keys.map((e: { key: { revoked_at: string | null } }) => e.key.revoked_at === null)).toEqual([false, false, true]);
      expect(res.body.spend).toMatchObject({ spent_cents: 50, cap_cents: 1000, remaining_cents: 950 });
      expect(Date.parse(res.body.spend.cycle_reset_at) - Date.parse(res.body.spend.cycle_start)).toBe(30 * 24 * 3600 * 1000);
    }
    const reads = await t.database.db
      .select()
      .from(complianceEvents)
      .where(and(eq(complianceEvents.accountId, own.accountId), eq(complianceEvents.eventType, 'service_key_list_read')));
    expect(reads).toHaveLength(4);
    expect(reads.filter((r) => (r.data as { count: number }).count === 3)).toHaveLength(4);
    for (const r of reads) expect(r.data).toMatchObject({ route: 'lineage', agent_id: first.id });
  });

  it('an uncapped agent of one key: null cap and remaining; 404 for unknown, malformed and foreign ids', async () => {
    const own = await createTenant(t);
    const other = await createTenant(t);
    const k = await mintChild(t, own);
    const res = await lineage(own.serviceKey, k.id);
    expect(res.body.keys).toHaveLength(1);
    expect(res.body.spend).toMatchObject({ spent_cents: 0, cap_cents: null, remaining_cents: null });
    for (const id of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) expect(errorCode(await lineage(own.serviceKey, id))).toBe('not_found');
    expect(errorCode(await lineage(other.serviceKey, k.id))).toBe('not_found');
    const rotated = await rotateChild(t, own, k.id);
    expect((await lineage(own.serviceKey, rotated.id)).body.keys).toHaveLength(2);
  });
});

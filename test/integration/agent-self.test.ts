import { randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, type Permission } from '../../src/db/schema.js';
import { cycleStartFor, SPEND_CYCLE_MS } from '../../src/domain/keys/key-object.js';
import { VERBS } from '../../src/domain/verify/rules.js';
import { mintChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

let seq = 0;
const rid = () => `self-${Date.now()}-${++seq}`;
const verify = (body: Record<string, unknown>) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
const self = (key: string, prefix = '/v1') => call(t.app, 'GET', `${prefix}/agents/self`, { token: key });
const check = (key: string, body: unknown) => call(t.app, 'POST', '/v1/agents/self/check', { token: key, body });
const lastUsed = async (id: string) => (await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, id)))[0]!.lastUsedAt;

describe('GET /v1/agents/self', () => {
  it('answers the key, agent, spend of the cycle and self-rotation, on both paths', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 500, selfRotation: true, agentLabel: 'planner.1' });
    expect((await verify({ key: k.plaintext, verb: 'call', cost_cents: 120, request_id: rid() })).body.valid).toBe(true);
    for (const prefix of ['/v1', '/api/v1']) {
      const res = await self(k.plaintext, prefix);
      expect(res.status).toBe(200);
      const start = cycleStartFor(k.row.cycleAnchor, t.clock.now());
      expect(res.body).toEqual({
        key: expect.objectContaining({ id: k.id, agent_label: 'planner.1', monthly_cap_cents: 500, monthly_spend_cents: 120 }),
        agent_id: k.row.agentId,
        spend: {
          cycle_start: start.toISOString(),
          cycle_reset_at: new Date(start.getTime() + SPEND_CYCLE_MS).toISOString(),
          spent_cents: 120,
          cap_cents: 500,
          remaining_cents: 380,
        },
        self_rotation: true,
        delegation: { can_delegate: false, depth: 0, parent_key_id: null, reserved_cents: 0, available_cents: 380 },
      });
    }
  });

  it('an uncapped key has null cap and remaining', async () => {
    const k = await mintChild(t, tenant);
    const res = await self(k.plaintext);
    expect(res.body.spend).toMatchObject({ spent_cents: 0, cap_cents: null, remaining_cents: null });
    expect(res.body.self_rotation).toBe(false);
  });

  it('records agent_self_read, which the next audit read shows', async () => {
    const k = await mintChild(t, tenant);
    await self(k.plaintext);
    const feed = await call(t.app, 'GET', '/v1/audit?limit=5', { token: k.plaintext });
    const read = feed.body.events.find((e: any) => e.data.event_type === 'agent_self_read');
    expect(read.data).toMatchObject({ actor_key_id: k.id, actor_kind: 'api_key', subject_key_id: k.id, details: { agent_id: k.row.agentId } });
  });

  it('a service key is refused with the one invalid_api_key', async () => {
    const res = await self(tenant.serviceKey);
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('invalid_api_key');
  });
});

describe('POST /v1/agents/self/check', () => {
  it('writes nothing: no debit, no ledger row, no last_used_at', async () => {
    const k = await mintChild(t, tenant, { monthlyCapCents: 100 });
    const res = await check(k.plaintext, { verb: 'call', cost_cents: 40 });
    expect(res.body).toEqual({ allowed: true, code: 'valid', details: [] });
    expect(await lastUsed(k.id)).toBeNull();
    expect((await self(k.plaintext)).body.spend.spent_cents).toBe(0);
  });

  it('bad bodies are 422', async () => {
    const k = await mintChild(t, tenant);
    for (const body of [{}, { verb: 'fly' }, { verb: 'call', cost_cents: 0 }, { verb: 'call', line_id: 'x' }, { verb: 'call', request_id: 'r' }]) {
      const res = await check(k.plaintext, body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
  });

  /*
   * One table over tier × verb × line × cap, both calls per row: check first, then verify with the
   * same verb, line and cost on the same key, so both see the same state (a valid verify with cost
   * then debits, and the next row sees the new spend: the cap's edge is crossed within the table).
   */
  it('agrees with verify on the whole tier × verb × line × cap matrix', async () => {
    const LINE = randomUUID();
    const tiers: Exclude<Permission, 'legacy_full'>[] = ['full', 'call_only', 'sms_only', 'read_only'];
    const keys: { label: string; plaintext: string }[] = [{ label: 'legacy_full', plaintext: tenant.apiKey }];
    for (const permissions of tiers) {
      for (const lineId of [null, LINE]) {
        for (const monthlyCapCents of [null, 100]) {
          const k = await mintChild(t, tenant, { permissions, lineId, monthlyCapCents });
          keys.push({ label: `${permissions} line=${lineId ? 'L' : '-'} cap=${monthlyCapCents}`, plaintext: k.plaintext });
        }
      }
    }
    let rows = 0;
    const outcomes = new Set<string>();
    for (const key of keys) {
      for (const verb of VERBS) {
        for (const line of [undefined, LINE, randomUUID()]) {
          for (const cost of [undefined, 30, 150]) {
            const req = { verb, ...(line === undefined ? {} : { line_id: line }), ...(cost === undefined ? {} : { cost_cents: cost }) };
            const c = await check(key.plaintext, req);
            const v = await verify({ key: key.plaintext, ...req, ...(cost === undefined ? {} : { request_id: rid() }) });
            const row = `${key.label} ${JSON.stringify(req)}`;
            expect(c.status, row).toBe(200);
            expect(c.body.allowed, row).toBe(v.body.valid);
            expect(c.body.code, row).toBe(v.body.code);
            expect(c.body.details, row).toEqual(v.body.error?.error.details ?? []);
            outcomes.add(c.body.code);
            rows++;
          }
        }
      }
    }
    expect(rows).toBe(17 * 4 * 3 * 3);
    expect([...outcomes].sort()).toEqual(['agent_cap_exceeded', 'agent_permission_denied', 'agent_scope_error', 'valid']);
  });
});

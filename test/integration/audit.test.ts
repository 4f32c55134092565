import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { canonicalEvent, chainHash } from '../../src/domain/audit/chain-hash.js';
import { mintAgent, type Agent } from '../support/agents.js';
import { addServiceKey, call, createTenant, errorCode, recordSecrets, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
let agent: Agent;
it.beforeAll(async ({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
  agent = await mintAgent(t, tenant.serviceKey, { name: 'reader' });
});

const audit = (token: string, query = '', prefix = '/v1') => call(t.app, 'GET', `${prefix}/audit${query}`, { token });

describe('GET /v1/audit: the feed and its audit of audit (spec §6)', () => {
  it('the second read shows the first read as an audit_read with the right count', async () => {
    const own = await createTenant(t);
    const a = await mintAgent(t, own.serviceKey);
    const first = await audit(a.apiKey);
    expect(first.status).toBe(200);
    expect(first.body.api_key_id).toBe(a.id);
    expect(first.body.limit).toBe(100);
    expect(first.body.next_before).toBeNull();
    expect(first.body.events.map((e: any) => e.data.event_type)).toEqual(['agent_key_created']);
    const second = await audit(a.apiKey, '', '/api/v1');
    expect(second.status).toBe(200);
    const [latest, ...rest] = second.body.events;
    expect(latest.type).toBe('compliance_event');
    expect(latest.data.event_type).toBe('audit_read');
    expect(latest.data.actor_key_id).toBe(a.id);
    expect(latest.data.actor_kind).toBe('api_key');
    expect(latest.data.subject_key_id).toBe(a.id);
    expect(latest.data.details).toMatchObject({ count: 1, api_key_id: a.id, limit: 100, event_types: null, user_agent: 'lightMyRequest' });
    expect(latest.data.details.ip).toBeTypeOf('string');
    expect(rest.map((e: any) => e.id)).toEqual(first.body.events.map((e: any) => e.id));
  });

  it('items carry both timestamp names, newest first, and every field the chain needs', async () => {
    await audit(agent.apiKey);
    const res = await audit(agent.apiKey, '?limit=500');
    const events = res.body.events;
    expect(events.length).toBeGreaterThanOrEqual(2);
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(['createdAt', 'created_at', 'data', 'id', 'type']);
      expect(e.created_at).toBe(e.createdAt);
      expect(e.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      // An agent can check its slice: recompute each item's link from the wire alone.
      const d = e.data;
      const canonical = canonicalEvent({
        id: e.id,
        accountId: d.account_id,
        eventType: d.event_type,
        environment: d.environment,
        actorKind: d.actor_kind,
        actorKeyId: d.actor_key_id,
        actorKeyPrefix: d.actor_key_prefix,
        subjectKeyId: d.subject_key_id,
        relatedKeyId: d.related_key_id,
        requestId: d.request_id,
        ip: d.ip,
        userAgent: d.user_agent,
        data: d.details,
        createdAt: new Date(e.created_at),
      });
      expect(chainHash(d.prev_hash, d.seq, canonical)).toBe(d.hash);
    }
    for (let i = 1; i < events.length; i++) {
      const [a, b] = [events[i - 1], events[i]];
      expect(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id)).toBe(true);
    }
  });

  it('the before cursor walks the whole history, page by page, without gaps or repeats', async () => {
    const own = await createTenant(t);
    const a = await mintAgent(t, own.serviceKey);
    for (let i = 0; i < 4; i++) await audit(a.apiKey, '?event_types=call');
    const all = await audit(a.apiKey, '?limit=500');
    expect(all.body.events).toHaveLength(5);
    const walked: string[] = [];
    let before: string | null = null;
    let pages = 0;
    do {
      const res: any = await audit(a.apiKey, `?limit=2${before ? `&before=${before}` : ''}`);
      expect(res.status).toBe(200);
      walked.push(...res.body.events.map((e: any) => e.id));
      before = res.body.next_before;
      pages++;
    } while (before && pages < 10);
    // The walk's first page also shows the full read's own audit_read, newest of all.
    expect(walked.slice(1)).toEqual(all.body.events.map((e: any) => e.id));
    expect(new Set(walked).size).toBe(walked.length);
    expect(pages).toBe(3);
  });

  it('event_types filters; call and sms items are accepted and never produced', async () => {
    const calls = await audit(agent.apiKey, '?event_types=call,sms');
    expect(calls.status).toBe(200);
    expect(calls.body.events).toEqual([]);
    const ce = await audit(agent.apiKey, '?event_types=compliance_event,billing_transaction');
    expect(ce.body.events[0].data.event_type).toBe('audit_read');
    expect(ce.body.events[0].data.details).toMatchObject({ count: 0, event_types: ['call', 'sms'] });
  });

  it('bad query values are 422 validation_error; event_types names the allowed set', async () => {
    const bad = await audit(agent.apiKey, '?event_types=call,voicemail');
    expect(bad.status).toBe(422);
    expect(errorCode(bad)).toBe('validation_error');
    expect(JSON.stringify(bad.body.error.details)).toContain('call, sms, compliance_event, billing_transaction');
    for (const q of ['?limit=0', '?limit=501', '?limit=abc', '?before=nope', '?before=00000000-0000-4000-8000-000000000000', '?unknown=1']) {
      const res = await audit(agent.apiKey, q);
      expect(res.status, q).toBe(422);
      expect(errorCode(res), q).toBe('validation_error');
    }
    expect((await audit(agent.apiKey, '?limit=500')).status).toBe(200);
  });
});

describe('GET /v1/audit: who may read which feed', () => {
  it('self by default and by id; a sibling of the same account and environment', async () => {
    const byId = await audit(agent.apiKey, `?api_key_id=${agent.id}`);
    expect(byId.status).toBe(200);
    expect(byId.body.api_key_id).toBe(agent.id);
    const sibling = await audit(tenant.apiKey, `?api_key_id=${agent.id}`);
    expect(sibling.status).toBe(200);
    expect(sibling.body.api_key_id).toBe(agent.id);
    expect(sibling.body.events.some((e: any) => e.data.event_type === 'agent_key_created' && e.data.subject_key_id === agent.id)).toBe(true);
    // The portal key's read of the agent's feed is on the agent's feed too (the agent is its subject).
    const after = await audit(agent.apiKey);
    expect(after.body.events.some((e: any) => e.data.event_type === 'audit_read' && e.data.actor_key_id === tenant.apiKeyId)).toBe(true);
  });

  it('another account, another environment, an unknown id or not a uuid → 404 not_found', async () => {
    const other = await createTenant(t);
    const live = await addServiceKey(t, tenant.accountId, 'live');
    const liveAgent = await mintAgent(t, live.serviceKey);
    for (const id of [other.apiKeyId, liveAgent.id, '00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      const res = await audit(agent.apiKey, `?api_key_id=${id}`);
      expect(res.status, id).toBe(404);
      expect(errorCode(res)).toBe('not_found');
    }
    // The live key reads its own feed, and not the test agent's.
    expect((await audit(liveAgent.apiKey)).status).toBe(200);
    expect((await audit(liveAgent.apiKey, `?api_key_id=${agent.id}`)).status).toBe(404);
  });

  it("a line-scoped key reads only its own feed: a sibling's is 403 agent_scope_error with line_id", async () => {
    const lineId = '6a1f0d38-2c55-4c1e-9b7a-0d3e1f2a4b5c';
    const scoped = await mintAgent(t, tenant.serviceKey, { name: 'line agent', lineId });
    expect((await audit(scoped.apiKey)).status).toBe(200);
    expect((await audit(scoped.apiKey, `?api_key_id=${scoped.id}`)).status).toBe(200);
    for (const id of [agent.id, tenant.apiKeyId, '00000000-0000-4000-8000-000000000000']) {
      const res = await audit(scoped.apiKey, `?api_key_id=${id}`);
      expect(res.status, id).toBe(403);
      expect(errorCode(res)).toBe('agent_scope_error');
      expect(res.body.error.details[0].line_id).toBe(lineId);
    }
    // Its own rotation chain is its own history: after a self-rotation it still reads its predecessor.
    const rotating = await mintAgent(t, tenant.serviceKey, { name: 'line rotator', lineId, selfRotation: true });
    const rotated = await t.app.inject({
      method: 'POST',
      url: '/v1/agents/self/rotate-key',
      headers: { authorization: `Bearer ${rotating.apiKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ rotationSecret: rotating.rotationSecret }),
      remoteAddress: '198.18.0.1',
    });
    recordSecrets(rotated.body);
    expect(rotated.statusCode).toBe(200);
    const predecessor = await audit(JSON.parse(rotated.body).apiKey, `?api_key_id=${rotating.id}`);
    expect(predecessor.status).toBe(200);
    expect(predecessor.body.events.some((e: any) => e.data.event_type === 'agent_key_self_rotated')).toBe(true);
  });

  it('a service key → 401 invalid_api_key; no key → 401 unauthorized', async () => {
    const svc = await audit(tenant.serviceKey);
    expect(svc.status).toBe(401);
    expect(errorCode(svc)).toBe('invalid_api_key');
    const none = await call(t.app, 'GET', '/v1/audit');
    expect(none.status).toBe(401);
    expect(errorCode(none)).toBe('unauthorized');
  });
});

describe('GET /v1/audit: nothing is disclosed without its record', () => {
  it('when the audit_read cannot be written, the read is 503 with Retry-After and returns no events', async () => {
    const own = await createTenant(t);
    const a = await mintAgent(t, own.serviceKey);
    const db = t.database.db;
    // Tests share the database: the trigger rejects audit_read inserts of this one account only.
    const name = `reject_audit_${own.accountId.replace(/-/g, '')}`;
    await db.execute(
      sql.raw(`create function ${name}() returns trigger language plpgsql as $$
        begin
          if new.account_id = '${own.accountId}' and new.event_type = 'audit_read' then
            raise exception 'audit_read refused for this test';
          end if;
          return new;
        end $$`),
    );
    await db.execute(sql.raw(`create trigger ${name} before insert on compliance_events for each row execute function ${name}()`));
    try {
      const res = await audit(a.apiKey);
      expect(res.status).toBe(503);
      expect(errorCode(res)).toBe('service_unavailable');
      expect(res.headers['retry-after']).toBe('2');
      expect(res.raw).not.toContain('agent_key_created');
      const reads = await queryRows<{ n: string }>(
        db,
        sql`select count(*) as n from compliance_events where account_id = ${own.accountId} and event_type = 'audit_read'`,
      );
      expect(Number(reads[0]!.n)).toBe(0);
    } finally {
      await db.execute(sql.raw(`drop trigger if exists ${name} on compliance_events`));
      await db.execute(sql.raw(`drop function if exists ${name}()`));
    }
    const ok = await audit(a.apiKey);
    expect(ok.status).toBe(200);
    expect(ok.body.events.map((e: any) => e.data.event_type)).toEqual(['agent_key_created']);
  });
});

import { eq, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { apiKeys, complianceEvents, type ApiKeyRow } from '../../src/db/schema.js';
import { recordEvent, type EventTx } from '../../src/domain/audit/events.js';
import { SPEND_CYCLE_MS, toKeyObject } from '../../src/domain/keys/key-object.js';
import { mintChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, createTenant, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * Golden output: the wire JSON of every key route (mint, GET, list, PATCH, DELETE, rotate, and a
 * replay) is, byte for byte, JSON.stringify of toKeyObject of the stored row, field order, escaping
 * and the spend cycle included; verify's key object is the same plus account_id. Then the audit
 * feed, whose items Postgres prints once, at link time: each item against the stored event row.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

/** Runs with the clock stopped, so that a route's `now` and the expected object's are one instant. */
async function frozen(fn: () => Promise<void>): Promise<void> {
  t.clock.freeze();
  try {
    await fn();
  } finally {
    t.clock.unfreeze();
  }
}

/** Every character class JSON must escape, and some it must not. */
const AWKWARD = 'q"uote\\back\nnew\r\t\b\f\u0001\u001f\u007f é ✓ 🔑 </script> \u2028';
const DAY = 24 * 3600 * 1000;

async function keyRow(id: string): Promise<ApiKeyRow> {
  const [row] = await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, id));
  return row!;
}

/** The body a route must send for a key: `{"key":…}` of toKeyObject of the stored row now. */
const keyBody = async (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ key: { ...toKeyObject(await keyRow(id), t.clock.now()), ...extra } });

let n = 0;
const idem = () => ({ 'idempotency-key': `golden-${++n}-${Math.random()}` });

describe('the key object on the wire is toKeyObject of the stored row', () => {
  it('mint, its replay, GET, list, PATCH, rotate and DELETE: byte for byte', () => frozen(async () => {
    const own = await createTenant(t);
    const token = own.serviceKey;
    const body = { name: 'golden', agent_label: 'fleet:g.1', line_id: crypto.randomUUID(), permissions: 'sms_only', monthly_cap_cents: 900, self_rotation: true };
    const headers = idem();
    const minted = await call(t.app, 'POST', '/v1/keys', { token, body, headers });
    expect(minted.status).toBe(201);
    const id = minted.body.key.id as string;
    const secrets = { plaintext_key: minted.body.key.plaintext_key, rotation_secret: minted.body.key.rotation_secret };
    expect(minted.raw).toBe(await keyBody(id, secrets));
    const replay = await call(t.app, 'POST', '/v1/keys', { token, body, headers });
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.raw).toBe(await keyBody(id));

    // Awkward text, microseconds JavaScript never sees, spend in the current cycle.
    const anchor = new Date(t.clock.now().getTime() - DAY);
    await t.database.db.execute(sql`
      update api_keys set name = ${AWKWARD}, agent_label = ${AWKWARD}, monthly_spend_cents = 120,
             cycle_anchor = ${anchor.toISOString()}::timestamptz + interval '456 microseconds',
             spend_cycle_start = ${anchor.toISOString()}::timestamptz,
             last_used_at = '2026-02-01T00:00:00.999999Z'
       where id = ${id}`);
    const got = await call(t.app, 'GET', `/v1/keys/${id}`, { token });
    expect(got.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(got.raw).toBe(await keyBody(id));
    expect(got.body.key).toMatchObject({ name: AWKWARD, monthly_spend_cents: 120, last_used_at: '2026-02-01T00:00:00.999Z' });

    const other = await mintChild(t, own, { monthlyCapCents: 5 });
    const rows = [await keyRow(id), await keyRow(other.id)].sort((a, b) => (a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1)) * -1);
    const list = await call(t.app, 'GET', '/v1/keys', { token });
    expect(list.raw).toBe(JSON.stringify({ keys: rows.map((r) => toKeyObject(r, t.clock.now())), total: 2 }));

    const patched = await call(t.app, 'PATCH', `/v1/keys/${id}`, { token, body: { name: 'renamed', monthly_cap_cents: null } });
    expect(patched.status).toBe(200);
    expect(patched.raw).toBe(await keyBody(id));

    const rotated = await call(t.app, 'POST', `/v1/keys/${id}/rotate`, { token, headers: idem() });
    expect(rotated.status).toBe(201);
    const next = rotated.body.key;
    expect(rotated.raw).toBe(await keyBody(next.id, { plaintext_key: next.plaintext_key, rotation_secret: next.rotation_secret }));
    // Spend follows the agent.
    expect(next.monthly_spend_cents).toBe(120);
    expect((await call(t.app, 'GET', `/v1/keys/${id}`, { token })).raw).toBe(await keyBody(id));

    const revoked = await call(t.app, 'DELETE', `/v1/keys/${next.id}`, { token });
    expect(revoked.status).toBe(200);
    expect(revoked.raw).toBe(await keyBody(next.id));
    expect(revoked.body.key.revoked_at).toBe(t.clock.now().toISOString());
  }));

  it('shows the stored spend only while its cycle is the current one, on GET and in the list', () => frozen(async () => {
    const own = await createTenant(t);
    const k = await mintChild(t, own);
    const now = t.clock.now().getTime();
    const at = (ms: number) => new Date(ms).toISOString();
    // [anchor, spend_cycle_start, spend shown]: a cycle is SPEND_CYCLE_MS from the anchor, fixed length.
    const cases: [string, string | null, number][] = [
      [at(now - DAY), at(now - DAY), 42], // cycle 0, its spend
      [at(now - SPEND_CYCLE_MS + 1), at(now - SPEND_CYCLE_MS + 1), 42], // the last millisecond of cycle 0
      [at(now - SPEND_CYCLE_MS), at(now - SPEND_CYCLE_MS), 0], // the first of cycle 1: cycle 0's spend is past
      [at(now - SPEND_CYCLE_MS), at(now), 42], // cycle 1's own spend
      [at(now - 2 * SPEND_CYCLE_MS - 1), at(now - SPEND_CYCLE_MS - 1), 0], // two cycles on, cycle 1's spend is past
      [at(now + DAY), at(now + DAY), 42], // an anchor ahead of the clock: cycle 0
      [at(now - DAY), null, 42], // never debited in a cycle: the stored spend
    ];
    for (const [anchor, cycleStart, shown] of cases) {
      await t.database.db.execute(sql`
        update api_keys set monthly_spend_cents = 42, cycle_anchor = ${anchor}::timestamptz,
               spend_cycle_start = ${cycleStart}::timestamptz where id = ${k.id}`);
      const got = await call(t.app, 'GET', `/v1/keys/${k.id}`, { token: own.serviceKey });
      expect(got.body.key.monthly_spend_cents, `anchor ${anchor}, cycle ${cycleStart}`).toBe(shown);
      expect(got.raw).toBe(await keyBody(k.id));
      const list = await call(t.app, 'GET', '/v1/keys', { token: own.serviceKey });
      expect(list.body.keys[0].monthly_spend_cents).toBe(shown);
    }
  }));

  it('verify answers the same key object whether it debits or not: toKeyObject of the row, then account_id', async () => {
    const line = crypto.randomUUID();
    const k = await mintChild(t, tenant, { monthlyCapCents: 900, agentLabel: AWKWARD, lineId: line });
    const verify = (body: unknown) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
    // The test clock stands still: last_used_at, set by the debit, stays fresh, so no answer below writes it.
    const debited = await verify({ key: k.plaintext, verb: 'call', line_id: line, cost_cents: 7, request_id: 'json-twin' });
    expect(debited.body).toMatchObject({ valid: true, debit: { replayed: false } });
    const plain = await verify({ key: k.plaintext, verb: 'call', line_id: line });
    expect(plain.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(plain.body).toEqual({ valid: true, code: 'valid', key: debited.body.key });
    const row = await keyRow(k.id);
    expect(JSON.stringify(plain.body.key)).toBe(JSON.stringify({ ...toKeyObject(row, t.clock.now()), account_id: row.accountId }));
    expect(plain.body.key.monthly_spend_cents).toBe(7);
    expect(plain.body.key.agent_label).toBe(AWKWARD);
    // Refusals carry the key too: with a cost and without, the same.
    const refusedWithCost = await verify({ key: k.plaintext, verb: 'call', cost_cents: 1, request_id: 'json-twin-2' });
    const refused = await verify({ key: k.plaintext, verb: 'call' });
    expect(refused.body).toMatchObject({ valid: false, code: 'agent_scope_error', key: debited.body.key });
    expect(refusedWithCost.body).toEqual(refused.body);
  });
});

describe('audit items built by Postgres', () => {
  it('carry every stored field of the event, awkward strings exactly', async () => {
    const k = await mintChild(t, tenant);
    // The audit read records the caller's user agent: an awkward one (as far as HTTP allows).
    const ua = 'agent "q" \\ é ✓ 🔑 </script>';
    const first = await call(t.app, 'GET', '/v1/audit', { token: k.plaintext, headers: { 'user-agent': ua } });
    expect(first.status).toBe(200);
    const feed = await call(t.app, 'GET', '/v1/audit?limit=500', { token: k.plaintext });
    expect(feed.status).toBe(200);
    expect(feed.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Object.keys(feed.body)).toEqual(['events', 'limit', 'api_key_id', 'next_before']);
    const items = feed.body.events as { id: string; created_at: string; createdAt: string; data: Record<string, unknown> }[];
    expect(items).toHaveLength(2); // the mint and the first read (a read's own record shows from the next read on)
    const stored = await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, tenant.accountId));
    const byId = new Map(stored.map((e) => [e.id, e]));
    for (const item of items) {
      const e = byId.get(item.id)!;
      expect(item).toEqual({
        type: 'compliance_event',
        id: e.id,
        created_at: e.createdAt.toISOString(),
        createdAt: e.createdAt.toISOString(),
        data: {
          event_type: e.eventType,
          account_id: e.accountId,
          environment: e.environment,
          actor_kind: e.actorKind,
          actor_key_id: e.actorKeyId,
          actor_key_prefix: e.actorKeyPrefix,
          subject_key_id: e.subjectKeyId,
          related_key_id: e.relatedKeyId,
          request_id: e.requestId,
          ip: e.ip,
          user_agent: e.userAgent,
          details: e.data,
          seq: e.seq,
          prev_hash: e.prevHash,
          hash: e.hash,
        },
      });
    }
    const read = items.find((i) => i.data.event_type === 'audit_read' && i.data.user_agent === ua);
    expect(read).toBeDefined();
    expect((read!.data.details as { user_agent: string }).user_agent).toBe(ua);
  });

  it('prints each item once, when its event is linked, and answers with that text as stored', async () => {
    const k = await mintChild(t, tenant);
    expect((await call(t.app, 'GET', '/v1/audit', { token: k.plaintext, headers: { 'user-agent': AWKWARD.replace(/[\u0000-\u001f\u007f]/g, '') } })).status).toBe(200);
    const feed = await call(t.app, 'GET', '/v1/audit?limit=500', { token: k.plaintext });
    expect(feed.status).toBe(200);
    const rows = await queryRows<{ id: string; seq: string | null; item_json: string | null; printed: string }>(
      t.database.db,
      sql`select e.id, e.seq, e.item_json, keyplane_audit_item(e) as printed from compliance_events e
           where e.account_id = ${tenant.accountId} and (e.actor_key_id = ${k.id} or e.subject_key_id = ${k.id})`,
    );
    // The mint, the first read and the second read: every one linked, so every one printed.
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.seq).not.toBeNull();
      expect(row.item_json).toBe(row.printed);
    }
    const items = feed.body.events as { id: string }[];
    expect(items).toHaveLength(2);
    // The body carries the stored text byte for byte, items in feed order.
    const stored = new Map(rows.map((r) => [r.id, r.item_json!]));
    expect(feed.raw).toContain(`{"events":[${items.map((i) => stored.get(i.id)).join(',')}],`);
  });

  it('prints from the row a linked event that has no printed item (as linked before migration 0006)', async () => {
    const k = await mintChild(t, tenant);
    expect((await call(t.app, 'GET', '/v1/audit', { token: k.plaintext })).status).toBe(200);
    const ofKey = sql`account_id = ${tenant.accountId} and (actor_key_id = ${k.id} or subject_key_id = ${k.id})`;
    const before = await queryRows<{ item_json: string }>(
      t.database.db,
      sql`select item_json from compliance_events where ${ofKey} order by created_at desc, id desc`,
    );
    expect(before).toHaveLength(2);
    // As a database migrated from 0005 holds them: linked, item_json null. The link-once trigger
    // refuses this UPDATE, so it runs with triggers off (replica role, this transaction only).
    await t.database.db.transaction(async (tx) => {
      await tx.execute(sql`set local session_replication_role = replica`);
      await tx.execute(sql`update compliance_events set item_json = null where ${ofKey}`);
    });
    const feed = await call(t.app, 'GET', '/v1/audit?limit=500', { token: k.plaintext });
    expect(feed.status).toBe(200);
    // The newest item is the first read's record, then the same items printed from their rows:
    // byte for byte the text the link printed.
    expect(feed.body.events).toHaveLength(2);
    expect(feed.raw).toContain(`{"events":[${before.map((r) => r.item_json).join(',')}],`);
  });

  it('prints from the row an event read before it is linked (seq, prev_hash and hash null)', async () => {
    const k = await mintChild(t, tenant);
    // Committed the way a request commits its event, but not linked (as when its round failed);
    // the next read's statement reads the page before that read links anything.
    const { id } = await t.database.db.transaction(async (tx) => {
      return recordEvent(tx as EventTx, {
        accountId: tenant.accountId,
        eventType: 'agent_key_updated',
        environment: 'test',
        actor: { kind: 'portal', keyId: null, keyPrefix: 'portal' },
        meta: { requestId: 'unlinked', ip: null, userAgent: AWKWARD },
        subjectKeyId: k.id,
        data: { changed: ['name'], note: AWKWARD },
        createdAt: new Date(),
      });
    });
    const [waiting] = await queryRows<{ seq: string | null; printed: string }>(
      t.database.db,
      sql`select seq, keyplane_audit_item(e) as printed from compliance_events e where id = ${id}`,
    );
    expect(waiting!.seq).toBeNull();
    const feed = await call(t.app, 'GET', '/v1/audit?limit=500', { token: k.plaintext });
    expect(feed.status).toBe(200);
    expect(feed.raw).toContain(`{"events":[${waiting!.printed},`);
    expect(feed.body.events[0]).toMatchObject({ id, data: { seq: null, prev_hash: null, hash: null, details: { note: AWKWARD } } });
    // That read's round linked it, and printed it then with its link.
    const [linked] = await queryRows<{ seq: string | null; item_json: string | null; printed: string }>(
      t.database.db,
      sql`select seq, item_json, keyplane_audit_item(e) as printed from compliance_events e where id = ${id}`,
    );
    expect(linked!.seq).not.toBeNull();
    expect(linked!.item_json).toBe(linked!.printed);
    expect(JSON.parse(linked!.item_json!).data.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses a printed item on an event that is not linked', async () => {
    const attempt = sql`insert into compliance_events (id, account_id, event_type, environment, actor_kind, data, created_at, item_json)
                        values (gen_random_uuid(), ${tenant.accountId}, 'audit_read', 'test', 'portal', '{}'::jsonb, now(), '{"forged":true}')`;
    const refusal = await t.database.db.execute(attempt).then(
      () => 'accepted',
      (err: { cause?: Error; message: string }) => (err.cause ?? err).message,
    );
    expect(refusal).toMatch(/compliance_events_item_ck/);
  });

  it('pages with next_before exactly as before: the last item of a full page, null on the last page', async () => {
    const k = await mintChild(t, tenant);
    for (let i = 0; i < 4; i++) expect((await call(t.app, 'GET', '/v1/audit?limit=1', { token: k.plaintext })).status).toBe(200);
    const all = await call(t.app, 'GET', '/v1/audit?limit=500', { token: k.plaintext });
    const ids = (all.body.events as { id: string }[]).map((e) => e.id);
    const page1 = await call(t.app, 'GET', '/v1/audit?limit=2', { token: k.plaintext });
    // page1 sees one more event (the previous read's record) at its head
    expect(page1.body.events).toHaveLength(2);
    expect(page1.body.next_before).toBe(page1.body.events[1].id);
    const rest = await call(t.app, 'GET', `/v1/audit?limit=500&before=${page1.body.next_before}`, { token: k.plaintext });
    expect(rest.body.next_before).toBeNull();
    expect([...page1.body.events.map((e: { id: string }) => e.id), ...rest.body.events.map((e: { id: string }) => e.id)].slice(1)).toEqual(ids);
    const none = await call(t.app, 'GET', '/v1/audit?event_types=call', { token: k.plaintext });
    expect(none.body).toEqual({ events: [], limit: 100, api_key_id: k.id, next_before: null });
  });
});

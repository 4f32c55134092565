import { and, eq, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { explainFilteredList, type ListFilter } from '../../src/db/queries/key-list.queries.js';
import { complianceEvents } from '../../src/db/schema.js';
import { eventValues, NO_REQUEST } from '../../src/domain/audit/events.js';
import { call, createTenant, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { mintChild, revokeChild } from '../support/child-keys.js';
import { it } from '../support/fixtures.js';

/*
 * GET /v1/keys filters against an expectation computed by hand from the keys themselves: a few
 * hundred keys in every state (live, suspended, expiring, overlapping, expired, revoked), labels,
 * lines and tiers, and every filter alone and combined, paged to the end.
 */

interface Key {
  id: string;
  created_at: string;
  agent_label: string | null;
  line_id: string | null;
  permissions: string;
  revoked_at: string | null;
  expires_at: string | null;
  suspended_at: string | null;
}

const LINES = ['5b8f0d4e-0d5a-4a8e-9a55-0a5c9d6c1a01', '5b8f0d4e-0d5a-4a8e-9a55-0a5c9d6c1a02'];
const TIERS = ['full', 'call_only', 'sms_only', 'read_only'] as const;
const DAY = 24 * 3600 * 1000;

let t: TestApp;
let own: Tenant;
let n = 0;
it.beforeAll(async ({ app }) => {
  t = app;
  own = await createTenant(t);
  await buildFleet();
});

const get = (query: string) => call(t.app, 'GET', `/v1/keys?${query}`, { token: own.serviceKey });

/** 240 keys: labels in three families, two lines, four tiers, and every state. */
async function buildFleet(): Promise<void> {
  const now = t.clock.now().getTime();
  for (let i = 0; i < 240; i++) {
    const expiresAt = i % 7 === 0 ? new Date(now + 3 * DAY) : i % 7 === 1 ? new Date(now + 30 * DAY) : i % 7 === 2 ? new Date(now + 90_000) : null;
    const k = await mintChild(t, own, {
      agentLabel: i % 5 === 4 ? null : `${['fleet:a', 'fleet:b', 'ops'][i % 3]}.${i}`,
      lineId: i % 4 === 3 ? null : LINES[i % 2]!,
      permissions: TIERS[i % 4]!,
      expiresAt,
    });
    if (i % 11 === 5) await revokeChild(t, own, k.id);
    else if (i % 13 === 6) await call(t.app, 'POST', `/v1/keys/${k.id}/suspend`, { token: own.serviceKey });
    else if (i % 17 === 8) {
      const res = await call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, {
        token: own.serviceKey,
        body: { overlap_seconds: 3600 },
        headers: { 'idempotency-key': `filters-${++n}` },
      });
      expect(res.status).toBe(201);
    }
    t.clock.advance(10);
  }
  // The keys minted with a 90-second expiry are expired now.
  t.clock.advance(120_000);
}

async function everyPage(query: string): Promise<{ ids: string[]; total: number }> {
  const ids: string[] = [];
  let total = -1;
  for (let offset = 0; ; offset += 100) {
    const res = await get(`${query}${query ? '&' : ''}limit=100&offset=${offset}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    total = res.body.total;
    ids.push(...res.body.keys.map((k: Key) => k.id));
    if (res.body.keys.length < 100) break;
  }
  return { ids, total };
}

const at = (s: string | null) => (s === null ? null : Date.parse(s));

/** Which keys each status holds at `now`: the rule docs/api-behaviour.md states. */
function inStatus(k: Key, status: string, now: number): boolean {
  const revoked = at(k.revoked_at);
  const expires = at(k.expires_at);
  const unexpired = expires === null || expires > now;
  const ends = [revoked, expires].filter((v): v is number => v !== null);
  switch (status) {
    case 'active':
      return revoked === null && unexpired;
    case 'suspended':
      return k.suspended_at !== null && revoked === null && unexpired;
    case 'expiring':
      return ends.length > 0 && Math.min(...ends) > now && Math.min(...ends) <= now + 7 * DAY;
    case 'revoked':
      return revoked !== null && revoked <= now;
    default:
      return true;
  }
}

const newestFirst = (a: Key, b: Key) => (a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1);

describe('GET /v1/keys filters', () => {
  it('every status and filter, alone and combined, pages to exactly the keys it names, newest first, with their total', async () => {
    const all = await everyPage('status=all');
    const keys = await Promise.all(all.ids.map(async (id) => (await call(t.app, 'GET', `/v1/keys/${id}`, { token: own.serviceKey })).body.key as Key));
    expect(keys.length).toBeGreaterThan(240); // every minted key and the successors of the overlapping ones
    const now = t.clock.now().getTime();
    const filters: Array<[string, (k: Key) => boolean]> = [
      ['', () => true],
      ['agent_label=fleet:a.3', (k) => k.agent_label === 'fleet:a.3'],
      ['agent_label_prefix=fleet:b', (k) => k.agent_label?.startsWith('fleet:b') ?? false],
      ['agent_label_prefix=fleet', (k) => k.agent_label?.startsWith('fleet') ?? false],
      [`line_id=${LINES[0]}`, (k) => k.line_id === LINES[0]],
      [`line_id=${LINES[1]!.toUpperCase()}`, (k) => k.line_id === LINES[1]],
      ['permissions=sms_only', (k) => k.permissions === 'sms_only'],
      [`agent_label_prefix=ops&permissions=call_only&line_id=${LINES[1]}`, (k) => (k.agent_label?.startsWith('ops') ?? false) && k.permissions === 'call_only' && k.line_id === LINES[1]],
    ];
    let nonEmpty = 0;
    for (const status of ['active', 'suspended', 'expiring', 'revoked', 'all']) {
      for (const [query, matches] of filters) {
        const expected = keys.filter((k) => inStatus(k, status, now) && matches(k)).sort(newestFirst).map((k) => k.id);
        const q = [status === 'active' && query ? '' : `status=${status}`, query].filter(Boolean).join('&');
        const got = await everyPage(q);
        expect(got.ids, `${q}`).toEqual(expected);
        expect(got.total, `${q} total`).toBe(expected.length);
        if (expected.length > 0) nonEmpty++;
      }
    }
    expect(nonEmpty).toBeGreaterThan(30);
  });

  it('records the filter in the read event; unknown parameters and bad values are 422', async () => {
    const res = await get('agent_label_prefix=fleet:a&status=expiring&limit=5');
    expect(res.status).toBe(200);
    const events = await t.database.db
      .select()
      .from(complianceEvents)
      .where(and(eq(complianceEvents.accountId, own.accountId), eq(complianceEvents.eventType, 'service_key_list_read')));
    expect(events.map((e) => e.data)).toContainEqual(
      expect.objectContaining({ filter: { status: 'expiring', agent_label_prefix: 'fleet:a' }, limit: 5, total: res.body.total, count: res.body.keys.length }),
    );
    for (const bad of ['status=expired', 'permissions=root', 'line_id=not-a-uuid', 'agent_label=UPPER', 'agent_label_prefix=', 'owner=me']) {
      const r = await get(bad);
      expect(r.status, bad).toBe(422);
      expect(errorCode(r)).toBe('validation_error');
    }
  });

  it('each filter walks its own index in list order: no scan of the service key\'s keys, no sort but the prefix\'s', async () => {
    if (t.database.kind !== 'postgres') return; // PGlite plans without the server's planner settings (db/database.ts)
    const owner = await call(t.app, 'GET', '/v1/keys?limit=1', { token: own.serviceKey });
    expect(owner.status).toBe(200);
    const event = eventValues({
      accountId: own.accountId,
      eventType: 'service_key_list_read',
      environment: 'test',
      actor: { kind: 'service_key', keyId: null, keyPrefix: 'plan' },
      meta: NO_REQUEST,
      createdAt: t.clock.now(),
    });
    const serviceKeyId = (await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, own.accountId)).limit(1))[0]!.actorKeyId;
    const cases: Array<[ListFilter, string]> = [
      [{ status: 'active', agentLabel: 'fleet:a.3' }, 'api_keys_creator_label_idx'],
      [{ status: 'active', agentLabelPrefix: 'fleet:b' }, 'api_keys_creator_label_idx'],
      [{ status: 'active', lineId: LINES[0] }, 'api_keys_creator_line_idx'],
      [{ status: 'active', permissions: 'sms_only' }, 'api_keys_creator_permissions_idx'],
      [{ status: 'suspended' }, 'api_keys_creator_suspended_idx'],
      [{ status: 'expiring' }, 'api_keys_creator_ending_idx'],
      [{ status: 'revoked' }, 'api_keys_creator_revoked_idx'],
      [{ status: 'all' }, 'api_keys_creator_all_idx'],
    ];
    await t.database.db.execute(sql`analyze api_keys`);
    for (const [filter, index] of cases) {
      const page = { accountId: own.accountId, serviceKeyId: serviceKeyId!, limit: 50, offset: 0, now: t.clock.now(), filter };
      const plan = await explainFilteredList(t.database.db, page, event);
      expect(plan, `${JSON.stringify(filter)}\n${plan}`).toContain(`using ${index}`);
      expect(plan, plan).not.toMatch(/Seq Scan/);
    }
  });
});

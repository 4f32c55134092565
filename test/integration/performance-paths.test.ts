import { asc, eq, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { complianceEvents } from '../../src/db/schema.js';
import { explainAuditFeed } from '../../src/domain/audit/audit.service.js';
import { actorOf, authenticate } from '../../src/domain/auth/auth.service.js';
import { canonicalEvent, chainHash } from '../../src/domain/audit/chain-hash.js';
import { NO_REQUEST } from '../../src/domain/audit/events.js';
import { ServiceKeyReadCache } from '../../src/domain/auth/service-key-cache.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * The hot paths keep the contract: the key list records its read in a valid chain link with the
 * right facts, the service-key read cache never lets a revoked key write, GET /v1/keys/{id} answers
 * only the owner, and the audit feed's statement keeps its plan.
 */

let t: TestApp;
it.beforeAll(({ app }) => {
  t = app;
});

let n = 0;
const mint = (token: string, name: string) =>
  call(t.app, 'POST', '/v1/keys', { token, body: { name }, headers: { 'idempotency-key': `perf-${++n}-${Math.random()}` } });

/** Recomputes every link of an account's chain with the app's own canonical form. */
async function verifyChain(accountId: string) {
  const rows = await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, accountId)).orderBy(asc(complianceEvents.seq));
  let prev = '0'.repeat(64);
  rows.forEach((r, i) => {
    expect(r.seq).toBe(i + 1);
    expect(r.prevHash).toBe(prev);
    expect(chainHash(r.prevHash!, r.seq!, canonicalEvent(r))).toBe(r.hash);
    prev = r.hash!;
  });
  return rows;
}

describe('GET /v1/keys records its read', () => {
  it('records count, limit, offset and total in a valid chain link, also for an empty page', async () => {
    const tenant = await createTenant(t);
    const minted = [];
    for (let i = 0; i < 3; i++) minted.push((await mint(tenant.serviceKey, `k${i}`)).body.key.id);
    const page = await call(t.app, 'GET', '/v1/keys?limit=2&offset=1', { token: tenant.serviceKey, headers: { 'user-agent': 'ua "with" quotes \\ and \u00e9' } });
    expect(page.status).toBe(200);
    expect(page.body.total).toBe(3);
    expect(page.body.keys.map((k: { id: string }) => k.id)).toEqual([minted[1], minted[0]]);
    const empty = await call(t.app, 'GET', '/v1/keys?offset=10', { token: tenant.serviceKey });
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual({ keys: [], total: 3 });

    const rows = await verifyChain(tenant.accountId);
    const reads = rows.filter((r) => r.eventType === 'service_key_list_read');
    expect(reads.map((r) => r.data)).toEqual([
      { count: 2, limit: 2, offset: 1, total: 3 },
      { count: 0, limit: 50, offset: 10, total: 3 },
    ]);
    expect(reads[0]).toMatchObject({ actorKind: 'service_key', actorKeyId: tenant.serviceKeyId, environment: 'test', userAgent: 'ua "with" quotes \\ and \u00e9' });
  });

  it('concurrent list reads of one account keep the chain gap-free and valid', async () => {
    const tenant = await createTenant(t);
    await mint(tenant.serviceKey, 'only');
    const answers = await Promise.all(Array.from({ length: 12 }, () => call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey })));
    expect(answers.every((a) => a.status === 200 && a.body.total === 1)).toBe(true);
    const rows = await verifyChain(tenant.accountId);
    expect(rows.filter((r) => r.eventType === 'service_key_list_read')).toHaveLength(12);
  });
});

describe('service-key read cache', () => {
  it('a revoked key read from the cache still cannot write, and stops reading after the grace', async () => {
    const tenant = await createTenant(t);
    const { body } = await mint(tenant.serviceKey, 'target');
    // Warm the cache with a read, then revoke the service key.
    expect((await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: tenant.serviceKey })).status).toBe(200);
    expect((await call(t.admin, 'DELETE', `/internal/v1/service-keys/${tenant.serviceKeyId}`, { token: ADMIN_TOKEN })).status).toBe(200);
    const write = await mint(tenant.serviceKey, 'after revoke');
    expect(write.status).toBe(401);
    expect(errorCode(write)).toBe('invalid_api_key');
    expect((await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: tenant.serviceKey })).status).toBe(200);
    t.clock.advance(61_000);
    const late = await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: tenant.serviceKey });
    expect(late.status).toBe(401);
    expect(errorCode(late)).toBe('invalid_api_key');
  });

  it('expires entries after its TTL and on a clock that went backwards; evicts the oldest when full', () => {
    const cache = new ServiceKeyReadCache(1_000, 2);
    const row = { id: 'a' } as never;
    const t0 = new Date(1_000_000);
    cache.set('h1', row, t0);
    expect(cache.get('h1', new Date(1_000_999))).toBe(row);
    expect(cache.get('h1', new Date(1_001_000))).toBeUndefined();
    cache.set('h1', row, t0);
    expect(cache.get('h1', new Date(999_999))).toBeUndefined();
    cache.set('h1', row, t0);
    cache.set('h2', row, t0);
    cache.set('h3', row, t0);
    expect(cache.get('h1', t0)).toBeUndefined();
    expect(cache.get('h3', t0)).toBe(row);
  });
});

describe('GET /v1/keys/{id}', () => {
  it('GET /v1/keys/{id} answers only the owner; API keys authenticate on /v1/keys as invalid', async () => {
    const a = await createTenant(t);
    const b = await createTenant(t);
    const { body } = await mint(a.serviceKey, 'mine');
    const own = await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: a.serviceKey });
    expect(own.status).toBe(200);
    expect(own.body.key.id).toBe(body.key.id);
    const other = await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: b.serviceKey });
    expect(other.status).toBe(404);
    expect(errorCode(other)).toBe('not_found');
    const wrongTier = await call(t.app, 'GET', `/v1/keys/${body.key.id}`, { token: a.apiKey });
    expect(errorCode(wrongTier)).toBe('invalid_api_key');
  });
});

describe('the audit feed statement', () => {
  it('walks the three key indexes in feed order and reads each item once: no join, no hashing, no second fetch', async () => {
    const tenant = await createTenant(t);
    const minted = await mint(tenant.serviceKey, 'feed plan');
    expect(minted.status).toBe(201);
    const token = minted.body.key.plaintext_key as string;
    // A history for the plan to choose over. As a plain join, the planner once hashed the whole table
    // for the page's items while it was small (a sequential scan that grew with every event).
    for (let i = 0; i < 30; i++) expect((await call(t.app, 'GET', '/v1/audit?limit=1', { token })).status).toBe(200);
    await t.database.db.execute(sql`analyze compliance_events`);
    const principal = await authenticate(t.database.db, token, 'api', { readOnly: true, now: t.clock.now() });
    if (principal.tier !== 'api') throw new Error('expected an API key');
    const ctx = { actor: actorOf(principal), meta: NO_REQUEST, now: t.clock.now() };
    for (const before of [null, minted.body.key.id as string]) {
      const plan = await explainAuditFeed(t.database.db, principal, { apiKeyId: 'self', limit: 100, eventTypes: null, before, exclude: null }, ctx);
      expect(plan, plan).not.toMatch(/Hash Join|Merge Join|HashAggregate/);
      // Items are read in the walks, never fetched again by id; only the cursor's item is looked up
      // so, once in each table, for every walk's bound.
      expect(plan.match(/using compliance_events_pkey/g) ?? [], plan).toHaveLength(before ? 1 : 0);
      expect(plan.match(/using spend_ledger_pkey/g) ?? [], plan).toHaveLength(before ? 1 : 0);
      if (t.database.kind === 'postgres') {
        // Server mode never plans a scan of the table (db/client.ts), so the walks are the indexes',
        // already in feed order: merged, not sorted.
        expect(plan, plan).toMatch(/Merge Append/);
        for (const index of ['actor', 'subject', 'related']) expect(plan, plan).toContain(`using compliance_events_${index}_idx`);
        // The key's debits and its predecessor's, by the ledger's feed index; the predecessor by primary key.
        expect(plan.match(/using spend_ledger_feed_idx/g) ?? [], plan).toHaveLength(2);
        expect(plan, plan).toContain('using api_keys_pkey');
        expect(plan, plan).not.toMatch(/Seq Scan|Bitmap Heap Scan|->  Sort /);
      }
    }
    // A feed that excludes the reads walks the indexes that hold none (a polling agent's history is mostly reads).
    const noReads = await explainAuditFeed(t.database.db, principal, { apiKeyId: 'self', limit: 100, eventTypes: null, before: null, exclude: ['audit_read', 'agent_self_read'] }, ctx);
    if (t.database.kind === 'postgres') {
      for (const index of ['actor_noreads', 'subject_noreads']) expect(noReads, noReads).toContain(`using compliance_events_${index}_idx`);
      expect(noReads, noReads).not.toMatch(/Seq Scan|Bitmap Heap Scan|->  Sort /);
    }
  });
});

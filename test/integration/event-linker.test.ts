import { sql } from 'drizzle-orm';
import { describe, expect, inject } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { verifyAccountChain } from '../../src/domain/audit/chain.service.js';
import { recordEvent, withEvents, type EventInput, type EventTx } from '../../src/domain/audit/events.js';
import { mintChild, revokeChild, rotateChild } from '../support/child-keys.js';
import { addServiceKey, call, createTenant, createTestApp, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
it.beforeAll(({ app }) => {
  t = app;
});

const event = (accountId: string, n: number): EventInput => ({
  accountId,
  eventType: 'audit_read',
  environment: 'test',
  actor: { kind: 'portal', keyId: null, keyPrefix: 'test' },
  meta: { requestId: `linker-${n}`, ip: null, userAgent: 'vitest' },
  data: { n, nested: { b: 1, a: [n, 'x'] } },
  createdAt: new Date(t.clock.now().getTime() + n),
});

/** Commits events the way a request does but "crashes" before linking them: they stay waiting. */
async function recordWithoutLinking(accountId: string, count: number): Promise<string[]> {
  return t.database.db.transaction(async (plain) => {
    // A transaction withEvents did not open (what a crash before the link leaves, in effect).
    const tx = plain as EventTx;
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push((await recordEvent(tx, event(accountId, i))).id);
    return ids;
  });
}

/** The database's reason for refusing a statement (drizzle wraps it as the error's cause). */
async function refusal(statement: ReturnType<typeof sql>): Promise<string> {
  try {
    await t.database.db.execute(statement);
  } catch (err) {
    return String(((err as { cause?: Error }).cause ?? (err as Error)).message);
  }
  throw new Error('the statement was not refused');
}

const chainLength = async (accountId: string) =>
  Number((await queryRows<{ n: string }>(t.database.db, sql`select chain_seq as n from accounts where id = ${accountId}`))[0]!.n);

describe('linking compliance events into the hash chain', () => {
  it('events a crash left waiting are linked by the sweep, in order, and the chain then verifies over them', async () => {
    const tenant = await createTenant(t);
    const db = t.database.db;
    const linkedBefore = await chainLength(tenant.accountId);
    const ids = await recordWithoutLinking(tenant.accountId, 5);
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(5);
    // Waiting events are not part of the chain yet: what is linked still verifies.
    expect(await verifyAccountChain(db, tenant.accountId)).toMatchObject({ events: linkedBefore, firstBreak: null });

    expect(await t.store.linker.linkPending()).toBeGreaterThanOrEqual(1);
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(0);
    const linked = await queryRows<{ id: string; seq: string }>(
      db,
      sql`select id, seq from compliance_events where id in ${sql.raw(`('${ids.join("','")}')`)} order by seq`,
    );
    // Oldest first (created_at), right after what was linked before.
    expect(linked.map((r) => r.id)).toEqual(ids);
    expect(linked.map((r) => Number(r.seq))).toEqual([1, 2, 3, 4, 5].map((i) => linkedBefore + i));
    expect(await verifyAccountChain(db, tenant.accountId)).toEqual({ accountId: tenant.accountId, events: linkedBefore + 5, firstBreak: null });
  });

  it('recordEvent takes only a transaction opened by withEvents, which links its events before returning', async () => {
    const tenant = await createTenant(t);
    // A plain transaction does not type-check as an EventTx (tsc, run by CI, checks this line).
    // @ts-expect-error a Tx that withEvents did not open would record an event nobody links
    const refused = (tx: Parameters<Parameters<typeof t.database.db.transaction>[0]>[0]) => recordEvent(tx, event(tenant.accountId, 0));
    expect(typeof refused).toBe('function');
    await withEvents(t.store, tenant.accountId, (tx) => recordEvent(tx, event(tenant.accountId, 0)));
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(0);
  });

  it('a waiting event may only gain its link; a linked event cannot change at all', async () => {
    const tenant = await createTenant(t);
    const db = t.database.db;
    const [waiting] = await recordWithoutLinking(tenant.accountId, 1);
    const attempts = [
      sql`update compliance_events set data = '{}'::jsonb where id = ${waiting}`,
      sql`update compliance_events set seq = 999999, prev_hash = 'x', hash = 'y', request_id = 'forged' where id = ${waiting}`,
      // The three link fields are set together or not at all.
      sql`update compliance_events set seq = 999999 where id = ${waiting}`,
    ];
    for (const attempt of attempts) await expect(db.execute(attempt)).rejects.toThrow();
    await t.store.linker.link(tenant.accountId);
    expect(await refusal(sql`update compliance_events set seq = seq, prev_hash = prev_hash, hash = hash where id = ${waiting}`)).toMatch(/append-only/);
    expect(await refusal(sql`delete from compliance_events where id = ${waiting}`)).toMatch(/append-only/);
    expect((await verifyAccountChain(db, tenant.accountId)).firstBreak).toBeNull();
  });

  it('linking cannot change any other column: each column of the table, forged while linking, is refused', async () => {
    const tenant = await createTenant(t);
    const [waiting] = await recordWithoutLinking(tenant.accountId, 1);
    const columns = await queryRows<{ column_name: string; data_type: string }>(
      t.database.db,
      sql`select column_name, data_type from information_schema.columns
           where table_schema = current_schema() and table_name = 'compliance_events'
             and column_name not in ('seq', 'prev_hash', 'hash')
           order by ordinal_position`,
    );
    // A different value of each column's type, also where the column is null. A new column of a
    // type not listed here fails this test until it is listed (and checked by the trigger).
    const forged: Record<string, (c: string) => string> = {
      uuid: () => 'gen_random_uuid()',
      text: (c) => `coalesce(${c}, '') || 'forged'`,
      jsonb: (c) => `${c} || '{"forged": true}'::jsonb`,
      'timestamp with time zone': (c) => `${c} + interval '1 millisecond'`,
    };
    expect(columns.length).toBeGreaterThanOrEqual(14);
    for (const { column_name: c, data_type: type } of columns) {
      expect(forged[type], `no forged value for ${c} (${type})`).toBeDefined();
      const attempt = sql.raw(
        `update compliance_events set seq = 999999, prev_hash = 'x', hash = 'y', ${c} = ${forged[type]!(c)} where id = '${waiting}'`,
      );
      expect(await refusal(attempt), c).toMatch(/append-only/);
    }
    // Linking itself (the three link fields, nothing else) is still allowed.
    await t.store.linker.link(tenant.accountId);
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(0);
    expect((await verifyAccountChain(t.database.db, tenant.accountId)).firstBreak).toBeNull();
  });

  it('200 concurrent event writers on one account share linking rounds and leave a gap-free chain', async () => {
    const tenant = await createTenant(t);
    const db = t.database.db;
    const before = await chainLength(tenant.accountId);
    await Promise.all(Array.from({ length: 200 }, (_, i) => withEvents(t.store, tenant.accountId, (tx) => recordEvent(tx, event(tenant.accountId, i)))));
    // Every write returned only after its event was linked.
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(0);
    expect(await chainLength(tenant.accountId)).toBe(before + 200);
    expect(await verifyAccountChain(db, tenant.accountId)).toEqual({ accountId: tenant.accountId, events: before + 200, firstBreak: null });
  });
});

describe('a linking round that does not end in time', () => {
  it('gives its waiters 503 with Retry-After (nothing disclosed); the round still finishes and links the event', async () => {
    // No round can finish within 1 ms: the bound (5 s in production) is what is under test.
    const hurried = await createTestApp({ database: t.database, services: { linkRoundTimeoutMs: 1 } });
    const tenant = await createTenant(hurried);
    const db = t.database.db;
    const before = await chainLength(tenant.accountId);
    let res;
    try {
      res = await call(hurried.app, 'GET', '/v1/keys', { token: tenant.serviceKey });
    } finally {
      await hurried.close();
    }
    if (inject('databaseUrl')) {
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('service_unavailable');
      expect(res.headers['retry-after']).toBe('2');
      expect(res.raw).not.toContain('"keys"');
    } else {
      // Embedded: PGlite answers in-process, so a whole round runs before any timer can fire; a
      // round there cannot be stuck behind another connection, which is what the bound is for.
      expect(res.status).toBe(200);
    }
    // The read's event was committed with the read; the overrun round (or the next) links it.
    await t.store.linker.link(tenant.accountId);
    expect(await t.store.linker.countWaiting(tenant.accountId)).toBe(0);
    expect(await verifyAccountChain(db, tenant.accountId)).toEqual({ accountId: tenant.accountId, events: before + 1, firstBreak: null });
  });
});

describe('the active child-key count behind GET /v1/keys total', () => {
  const counted = async (serviceKeyId: string) =>
    Number((await queryRows<{ n: string }>(t.database.db, sql`select coalesce(sum(active), 0) as n from child_key_counts where service_key_id = ${serviceKeyId}`))[0]!.n);
  const actual = async (serviceKeyId: string) =>
    Number(
      (await queryRows<{ n: string }>(t.database.db, sql`select count(*) as n from api_keys where created_by_service_key_id = ${serviceKeyId} and revoked_at is null`))[0]!.n,
    );

  it('follows mints, revocations and rotations, concurrent ones too, and answers total', async () => {
    const tenant = await createTenant(t);
    const other = await addServiceKey(t, tenant.accountId);
    const keys = await Promise.all(Array.from({ length: 30 }, (_, i) => mintChild(t, tenant, { name: `k${i}` })));
    await mintChild(t, other, { name: 'other' });
    await Promise.all([
      ...keys.slice(0, 10).map((k) => revokeChild(t, tenant, k.id)),
      ...keys.slice(10, 15).map((k) => rotateChild(t, tenant, k.id)),
    ]);
    expect(await actual(tenant.serviceKeyId)).toBe(20);
    expect(await counted(tenant.serviceKeyId)).toBe(20);
    expect(await counted(other.serviceKeyId)).toBe(1);
    const list = await call(t.app, 'GET', '/v1/keys?limit=5', { token: tenant.serviceKey });
    expect(list.status).toBe(200);
    expect(list.body.total).toBe(20);
    expect(list.body.keys).toHaveLength(5);
  });

  it('counts bulk inserts (one statement, many rows) and ignores updates that do not revoke', async () => {
    const tenant = await createTenant(t);
    const [seed] = await Promise.all([mintChild(t, tenant, { name: 'seed' })]);
    await t.database.db.execute(sql`
      insert into api_keys (id, account_id, environment, name, permissions, key_prefix, token_hash, created_at, cycle_anchor, agent_id, created_by_service_key_id)
      select gen_random_uuid(), account_id, environment, 'bulk', permissions, key_prefix, md5(random()::text) || g, created_at, cycle_anchor, agent_id, created_by_service_key_id
        from api_keys, generate_series(1, 250) g where id = ${seed!.id}`);
    await t.database.db.execute(sql`update api_keys set last_used_at = now() where created_by_service_key_id = ${tenant.serviceKeyId}`);
    expect(await counted(tenant.serviceKeyId)).toBe(251);
    expect(await actual(tenant.serviceKeyId)).toBe(251);
  });
});

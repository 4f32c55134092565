import { and, eq, isNull, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, idempotencyKeys } from '../../src/db/schema.js';
import { call, createTenant } from '../support/harness.js';
import { it } from '../support/fixtures.js';

const N = 20;

describe('races (real concurrency on the database)', () => {
  it(`${N} concurrent rotations of one key with distinct Idempotency-Keys → one 201, the rest 404, one active successor`, async ({ app: t, tenant }) => {
    const key = (await call(t.app, 'POST', '/v1/keys', { token: tenant.serviceKey, body: { name: 'contended' }, headers: { 'idempotency-key': `m-${Math.random()}` } })).body.key;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `race-${key.id}-${i}` } }),
      ),
    );
    const statuses = results.map((r) => r.status);
    const counts = { 201: statuses.filter((s) => s === 201).length, 404: statuses.filter((s) => s === 404).length };
    console.log(`[race] ${N} concurrent rotations: ${counts[201]}×201, ${counts[404]}×404`);
    expect(counts[201]).toBe(1);
    expect(counts[404]).toBe(N - 1);
    const successors = await t.database.db.select().from(apiKeys).where(eq(apiKeys.rotatedFrom, key.id));
    expect(successors).toHaveLength(1);
    expect(successors[0]!.revokedAt).toBeNull();
    const chain = await t.database.db
      .select()
      .from(apiKeys)
      .where(and(eq(apiKeys.agentId, key.id), isNull(apiKeys.revokedAt)));
    expect(chain).toHaveLength(1);
  });

  it(`${N} concurrent mints with one Idempotency-Key → exactly one key row; others 409 in progress or a 201 replay without plaintext`, async ({ app: t }) => {
    const own = await createTenant(t);
    const idem = `same-${Math.random()}`;
    const results = await Promise.all(
      Array.from({ length: N }, () => call(t.app, 'POST', '/api/v1/keys', { token: own.serviceKey, body: { name: 'once' }, headers: { 'idempotency-key': idem } })),
    );
    const fresh = results.filter((r) => r.status === 201 && r.body.key.plaintext_key);
    const replays = results.filter((r) => r.status === 201 && !r.body.key.plaintext_key);
    const busy = results.filter((r) => r.status === 409 && r.body.error.code === 'idempotency_in_progress');
    console.log(`[race] ${N} concurrent mints, one key: ${fresh.length} fresh 201, ${replays.length} replays, ${busy.length}×409 in progress`);
    expect(fresh).toHaveLength(1);
    expect(fresh.length + replays.length + busy.length).toBe(N);
    for (const r of replays) expect(r.headers['idempotent-replayed']).toBe('true');
    for (const r of busy) expect(r.headers['retry-after']).toBe('1');
    const rows = await t.database.db.select().from(apiKeys).where(eq(apiKeys.createdByServiceKeyId, own.serviceKeyId));
    expect(rows).toHaveLength(1);
  });
});

describe('races of the rotation under one Idempotency-Key', () => {
  it(`${N} concurrent rotations of one key with ONE Idempotency-Key → one rotation; the rest replay it or are told it is in progress`, async ({ app: t }) => {
    const own = await createTenant(t);
    const key = (await call(t.app, 'POST', '/v1/keys', { token: own.serviceKey, body: { name: 'once' }, headers: { 'idempotency-key': `m-${Math.random()}` } })).body.key;
    const idem = `rot-once-${Math.random()}`;
    const results = await Promise.all(
      Array.from({ length: N }, () => call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: own.serviceKey, headers: { 'idempotency-key': idem } })),
    );
    const fresh = results.filter((r) => r.status === 201 && r.body.key.plaintext_key);
    const replays = results.filter((r) => r.status === 201 && !r.body.key.plaintext_key);
    const busy = results.filter((r) => r.status === 409 && r.body.error.code === 'idempotency_in_progress');
    console.log(`[race] ${N} concurrent rotations, one Idempotency-Key: ${fresh.length} fresh, ${replays.length} replays, ${busy.length}×409`);
    expect(fresh).toHaveLength(1);
    expect(fresh.length + replays.length + busy.length).toBe(N);
    for (const r of replays) expect(r.body.key.id).toBe(fresh[0]!.body.key.id);
    const successors = await t.database.db.select().from(apiKeys).where(eq(apiKeys.rotatedFrom, key.id));
    expect(successors).toHaveLength(1);
  });

  it(`one Idempotency-Key on ${N} concurrent rotations of ${N} different keys → one rotates, the others are refused and their keys untouched`, async ({ app: t }) => {
    const own = await createTenant(t);
    const keys = [];
    for (let i = 0; i < N; i++) {
      keys.push((await call(t.app, 'POST', '/v1/keys', { token: own.serviceKey, body: { name: `k${i}` }, headers: { 'idempotency-key': `m-${i}-${Math.random()}` } })).body.key);
    }
    const idem = `rot-shared-${Math.random()}`;
    const results = await Promise.all(
      keys.map((k) => call(t.app, 'POST', `/v1/keys/${k.id}/rotate`, { token: own.serviceKey, headers: { 'idempotency-key': idem } })),
    );
    const rotated = results.filter((r) => r.status === 201);
    const refused = results.filter((r) => r.status === 409);
    console.log(`[race] one Idempotency-Key on ${N} keys: ${rotated.length}×201, ${refused.length}×409 (${[...new Set(refused.map((r) => r.body.error.code))].join(', ')})`);
    expect(rotated).toHaveLength(1);
    expect(refused).toHaveLength(N - 1);
    for (const r of refused) expect(['idempotency_key_reused', 'idempotency_in_progress']).toContain(r.body.error.code);
    // Exactly one old key revoked and one successor; every refused request left its key active.
    const rows = await t.database.db.select().from(apiKeys).where(eq(apiKeys.createdByServiceKeyId, own.serviceKeyId));
    expect(rows.filter((r) => r.revokedAt !== null)).toHaveLength(1);
    expect(rows.filter((r) => r.rotatedFrom !== null)).toHaveLength(1);
    expect(rows).toHaveLength(N + 1);
    const records = await t.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.idempotencyKey, idem));
    expect(records).toHaveLength(1);
  });
});

describe('atomicity', () => {
  it('a rotation whose compliance event cannot be written leaves the old key active, no successor, no idempotency row', async ({ app: t }) => {
    const own = await createTenant(t);
    const key = (await call(t.app, 'POST', '/v1/keys', { token: own.serviceKey, body: { name: 'atomic' }, headers: { 'idempotency-key': `a-${Math.random()}` } })).body.key;
    // A trigger that fails this account's rotation events only, so parallel test files are unaffected.
    const fn = `fail_rotation_${own.accountId.replace(/-/g, '')}`;
    await t.database.db.execute(sql.raw(`
      create function ${fn}() returns trigger language plpgsql as $$
      begin
        if new.account_id = '${own.accountId}' and new.event_type = 'agent_key_rotated' then
          raise exception 'injected failure';
        end if;
        return new;
      end $$`));
    await t.database.db.execute(sql.raw(`create trigger ${fn} before insert on compliance_events for each row execute function ${fn}()`));
    try {
      const idem = `atomic-${Math.random()}`;
      const res = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: own.serviceKey, headers: { 'idempotency-key': idem } });
      expect(res.status).toBe(500);
      expect(res.body).toEqual({ error: { code: 'internal_error', message: 'An internal error occurred.', details: [] } });
      const [old] = await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, key.id));
      expect(old!.revokedAt).toBeNull();
      expect(await t.database.db.select().from(apiKeys).where(eq(apiKeys.rotatedFrom, key.id))).toHaveLength(0);
      expect(await t.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.idempotencyKey, idem))).toHaveLength(0);
    } finally {
      await t.database.db.execute(sql.raw(`drop trigger ${fn} on compliance_events`));
      await t.database.db.execute(sql.raw(`drop function ${fn}()`));
    }
    // With the fault gone, the same rotation succeeds.
    const ok = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: own.serviceKey, headers: { 'idempotency-key': `after-${Math.random()}` } });
    expect(ok.status).toBe(201);
  });
});

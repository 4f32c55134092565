import { randomUUID } from 'node:crypto';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { apiKeys, complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN } from '../support/harness.js';
import { http, type Instance } from '../support/fleet.js';
import { startFleet, type FleetWorld } from '../support/fleet-world.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['postgres', 'redis']);

/*
 * Suspension and expiry across two keyplane processes on one Postgres: a suspension
 * made through one is seen by the other on its next request (nothing is cached), and both run the
 * expiry job, which writes each expired key's agent_key_expired once.
 */

let world: FleetWorld;
let database: Database;
let a: Instance;
let b: Instance;
let serviceKey: string;
let accountId: string;

beforeAll(async () => {
  world = await startFleet('lifecycle', ['lifecycle']);
  ({ database, accountId, a, b } = world);
  serviceKey = world.serviceKeys[0]!;
}, 90_000);

afterAll(() => world?.stop(), 60_000);

const mint = async (inst: Instance, body: Record<string, unknown> = {}) => {
  const res = await http(inst.base, 'POST', '/v1/keys', { token: serviceKey, body: { name: 'fleet agent', ...body }, headers: { 'idempotency-key': randomUUID() } });
  expect(res.status).toBe(201);
  return res.body.key as { id: string; plaintext_key: string };
};
const verify = (inst: Instance, key: string) => http(inst.adminBase, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call' } });

describe('key lifecycle on two instances', () => {
  it('suspended through one: refused by the other on the next request; resumed through it: accepted by the first on the next', async () => {
    const k = await mint(a);
    expect((await verify(b, k.plaintext_key)).body.valid).toBe(true);
    expect((await http(a.base, 'POST', `/v1/keys/${k.id}/suspend`, { token: serviceKey, body: { reason: 'fleet' } })).status).toBe(200);
    const refused = await verify(b, k.plaintext_key);
    expect(refused.body).toMatchObject({ valid: false, code: 'invalid_api_key', reason: 'suspended' });
    expect((await http(b.base, 'GET', '/v1/audit', { token: k.plaintext_key })).status).toBe(401);
    expect((await http(b.base, 'POST', `/v1/keys/${k.id}/resume`, { token: serviceKey })).status).toBe(200);
    expect((await verify(a, k.plaintext_key)).body.valid).toBe(true);
    expect((await http(a.base, 'GET', '/v1/audit', { token: k.plaintext_key })).status).toBe(200);
  });

  it('both instances sweep expiries: each expired key gets exactly one agent_key_expired', async () => {
    const keys = await Promise.all([mint(a, { ttl_seconds: 60 }), mint(b, { ttl_seconds: 60 }), mint(a, { ttl_seconds: 60 })]);
    // Past their expiry without waiting a minute: the instances' clocks are real ones.
    await database.db.execute(sql`update api_keys set expires_at = now() - interval '1 second' where account_id = ${accountId} and expires_at is not null`);
    expect((await verify(b, keys[0]!.plaintext_key)).body.reason).toBe('expired');
    const count = async (id: string) =>
      (
        await database.db
          .select()
          .from(complianceEvents)
          .where(and(eq(complianceEvents.eventType, 'agent_key_expired'), eq(complianceEvents.subjectKeyId, id)))
      ).length;
    const deadline = Date.now() + 40_000;
    while ((await Promise.all(keys.map((k) => count(k.id)))).some((n) => n === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    // Let both instances sweep at least once more (every 15 s) before counting.
    await new Promise((r) => setTimeout(r, 16_000));
    for (const k of keys) expect(await count(k.id)).toBe(1);
    const marked = await database.db.select({ at: apiKeys.expiryRecordedAt }).from(apiKeys).where(eq(apiKeys.id, keys[0]!.id));
    expect(marked[0]!.at).not.toBeNull();
  }, 90_000);
});

import { randomUUID } from 'node:crypto';
import { asc, eq } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { apiKeys, complianceEvents } from '../../src/db/schema.js';
import { canonicalEvent, chainHash } from '../../src/domain/audit/chain-hash.js';
import { ADMIN_TOKEN } from '../support/harness.js';
import { http, type Instance } from '../support/fleet.js';
import { startFleet, type FleetWorld } from '../support/fleet-world.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['postgres', 'redis']);

/*
 * Two keyplane processes on two ports, one Postgres database (created here, dropped after) and one
 * Redis (this run's own key prefix, deleted after): the way keyplane runs as a fleet. Every limit
 * is the contract's default.
 */

let world: FleetWorld;
let database: Database;
let a: Instance;
let b: Instance;
let serviceKey: string;
/** A second service key: the first one spends its whole rotation budget in the first test. */
let otherServiceKey: string;
let accountId: string;

beforeAll(async () => {
  world = await startFleet('fleet', ['fleet', 'fleet-2']);
  ({ database, accountId, a, b } = world);
  [serviceKey, otherServiceKey] = world.serviceKeys as [string, string];
}, 90_000);

afterAll(() => world?.stop(), 60_000);

const mint = (inst: Instance, token: string, body: unknown, idem = randomUUID()) =>
  http(inst.base, 'POST', '/v1/keys', { token, body, headers: { 'idempotency-key': idem } });

describe('two instances, one Postgres, one Redis', () => {
  it('30 rotations spread across both; the 31st on either answers 429 with Retry-After 120', async () => {
    const first = await mint(a, serviceKey, { name: 'rotated' });
    expect(first.status).toBe(201);
    let current: string = first.body.key.id;
    for (let i = 0; i < 30; i++) {
      const inst = i % 2 === 0 ? a : b;
      const res = await http(inst.base, 'POST', `/v1/keys/${current}/rotate`, { token: serviceKey, headers: { 'idempotency-key': randomUUID() } });
      expect(res.status, `rotation ${i + 1} on ${inst.name}`).toBe(201);
      expect(res.headers.get('ratelimit-policy')).toBe('"keys.rotate";q=30;w=3600');
      expect(res.headers.get('ratelimit')).toMatch(new RegExp(`^"keys\\.rotate";r=${29 - i};t=(3600|359\\d)$`));
      current = res.body.key.id;
    }
    for (const inst of [a, b]) {
      const res = await http(inst.base, 'POST', `/v1/keys/${current}/rotate`, { token: serviceKey, headers: { 'idempotency-key': randomUUID() } });
      expect(res.status, `31st rotation on ${inst.name}`).toBe(429);
      expect(res.body.error.code).toBe('rate_limited');
      expect(res.headers.get('retry-after')).toBe('120');
      expect(res.headers.get('ratelimit')).toMatch(/^"keys\.rotate";r=0;t=\d+$/);
    }
    // The refused rotations changed nothing: the last successor is still the active key.
    const got = await http(b.base, 'GET', `/v1/keys/${current}`, { token: serviceKey });
    expect(got.body.key.revoked_at).toBeNull();
  });

  it('one Idempotency-Key sent to both at the same moment mints exactly one key', async () => {
    for (let round = 0; round < 5; round++) {
      const idem = randomUUID();
      const name = `idem-${round}-${idem.slice(0, 8)}`;
      const results = await Promise.all([mint(a, serviceKey, { name }, idem), mint(b, serviceKey, { name }, idem)]);
      const statuses = results.map((r) => r.status).sort();
      expect(statuses.every((s) => s === 201 || s === 409), `statuses ${statuses}`).toBe(true);
      expect(statuses).toContain(201);
      // The plaintext is disclosed once at most; a replay never carries it.
      expect(results.filter((r) => r.body?.key?.plaintext_key).length).toBe(1);
      const ids = new Set(results.filter((r) => r.status === 201).map((r) => r.body.key.id));
      expect(ids.size).toBe(1);
      const rows = await database.db.select({ id: apiKeys.id }).from(apiKeys).where(eq(apiKeys.name, name));
      expect(rows).toEqual([{ id: [...ids][0] }]);
    }
  });

  it('a child key revoked through one is refused by the other on the next request', async () => {
    const child = await mint(a, otherServiceKey, { name: 'to-revoke' });
    const id = child.body.key.id;
    expect((await http(a.base, 'DELETE', `/v1/keys/${id}`, { token: otherServiceKey })).status).toBe(200);
    const patch = await http(b.base, 'PATCH', `/v1/keys/${id}`, { token: otherServiceKey, body: { name: 'revived?' } });
    expect(patch.status).toBe(404);
    const rotate = await http(b.base, 'POST', `/v1/keys/${id}/rotate`, { token: otherServiceKey, headers: { 'idempotency-key': randomUUID() } });
    expect(rotate.status).toBe(404);
    const got = await http(b.base, 'GET', `/v1/keys/${id}`, { token: otherServiceKey });
    expect(got.body.key.revoked_at).not.toBeNull();
  });

  it('a child API key revoked through one is refused as a credential by the other on its next request', async () => {
    const child = await mint(a, otherServiceKey, { name: 'agent-credential' });
    const token = child.body.key.plaintext_key;
    expect((await http(b.base, 'GET', '/v1/audit', { token })).status).toBe(200);
    expect((await http(a.base, 'DELETE', `/v1/keys/${child.body.key.id}`, { token: otherServiceKey })).status).toBe(200);
    const refused = await http(b.base, 'GET', '/v1/audit', { token });
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('invalid_api_key');
  });

  it('a service key revoked through one instance’s portal API is refused by the other at once', async () => {
    const created = await http(a.adminBase, 'POST', `/internal/v1/accounts/${accountId}/service-keys`, { token: ADMIN_TOKEN, body: { name: 'short-lived' } });
    expect(created.status).toBe(201);
    const sk = created.body.service_key;
    expect((await mint(b, sk.plaintext_key, { name: 'before' })).status).toBe(201);
    expect((await http(a.adminBase, 'DELETE', `/internal/v1/service-keys/${sk.id}`, { token: ADMIN_TOKEN })).status).toBe(200);
    const after = await mint(b, sk.plaintext_key, { name: 'after' });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('invalid_api_key');
  });

  it('concurrent writes through both instances keep the account’s compliance chain gap-free and valid', async () => {
    const burst = Array.from({ length: 16 }, (_, i) => mint(i % 2 ? a : b, otherServiceKey, { name: `burst-${i}` }));
    expect((await Promise.all(burst)).map((r) => r.status)).toEqual(Array(16).fill(201));
    const rows = await database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, accountId)).orderBy(asc(complianceEvents.seq));
    expect(rows.length).toBeGreaterThan(16 + 30);
    rows.forEach((row, i) => {
      expect(row.seq).toBe(i + 1);
      if (i > 0) expect(row.prevHash).toBe(rows[i - 1]!.hash);
      expect(row.hash).toBe(chainHash(row.prevHash!, row.seq!, canonicalEvent(row)));
    });
  });

  it('self-rotation: one agent budget across both instances (3 per 15 min), a lost answer retried on the other instance', async () => {
    const selfRotate = (inst: Instance, pair: { apiKey: string; rotationSecret: string }) =>
      http(inst.base, 'POST', '/v1/agents/self/rotate-key', { token: pair.apiKey, body: { rotationSecret: pair.rotationSecret } });
    const mintAgent = async () => {
      const r = await mint(a, otherServiceKey, { name: 'fleet agent', self_rotation: true });
      expect(r.status).toBe(201);
      return { apiKey: r.body.key.plaintext_key as string, rotationSecret: r.body.key.rotation_secret as string };
    };
    const agent = await mintAgent();
    // Rotated on a, answer lost; retried with the old pair on b: a fresh pair.
    expect((await selfRotate(a, agent)).status).toBe(200);
    const retried = await selfRotate(b, agent);
    expect(retried.status).toBe(200);
    const second = await selfRotate(a, { apiKey: retried.body.apiKey, rotationSecret: retried.body.rotationSecret });
    expect(second.status).toBe(200);
    const refused = await selfRotate(b, { apiKey: second.body.apiKey, rotationSecret: second.body.rotationSecret });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('ratelimit-policy')).toBe('"agents.self_rotate";q=3;w=900');
    // Another agent, from the same address, has its own budget.
    expect((await selfRotate(b, await mintAgent())).status).toBe(200);
  });
});

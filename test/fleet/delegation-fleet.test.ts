import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect } from 'vitest';
import type { Database } from '../../src/db/database.js';
import { ADMIN_TOKEN } from '../support/harness.js';
import { http, type Instance } from '../support/fleet.js';
import { startFleet, type FleetWorld } from '../support/fleet-world.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['postgres', 'redis']);

/*
 * A delegation tree taken down under load, on two keyplane processes sharing one Postgres: while
 * both instances verify (and debit through) the keys below a delegated key, that key is revoked,
 * suspended or expires. Every verification of its subtree that starts after the moment it stopped
 * (the revocation's or suspension's answer arriving, or the expiry instant) answers invalid, on
 * both instances: nothing is cached, and the ancestors are read on every request.
 */

let world: FleetWorld;
let database: Database;
let a: Instance;
let b: Instance;
let serviceKey: string;

beforeAll(async () => {
  world = await startFleet('delegation', ['delegation']);
  ({ database, a, b } = world);
  serviceKey = world.serviceKeys[0]!;
}, 90_000);

afterAll(() => world?.stop(), 60_000);

interface Held {
  id: string;
  plaintext: string;
}

/** A depth-0 key (minted by the service key) and its line of descendants at depths 1, 2 and 3. */
interface Tree {
  root: Held;
  d1: Held;
  d2: Held;
  d3: Held;
}

const idem = () => ({ 'idempotency-key': randomUUID() });
const held = (key: { id: string; plaintext_key: string }): Held => ({ id: key.id, plaintext: key.plaintext_key });

async function delegate(inst: Instance, parent: Held, budgetCents: number, ttlSeconds: number, canDelegate: boolean): Promise<Held> {
  const body = { name: 'fleet sub-agent', permissions: 'full', budget_cents: budgetCents, ttl_seconds: ttlSeconds, can_delegate: canDelegate };
  const res = await http(inst.base, 'POST', '/v1/agents/self/keys', { token: parent.plaintext, body, headers: idem() });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return held(res.body.key);
}

/** The tree, its levels delegated through alternate instances; each lives within its parent. */
async function tree(): Promise<Tree> {
  const minted = await http(a.base, 'POST', '/v1/keys', { token: serviceKey, body: { name: 'fleet root', can_delegate: true }, headers: idem() });
  expect(minted.status, JSON.stringify(minted.body)).toBe(201);
  const root = held(minted.body.key);
  const d1 = await delegate(b, root, 300_000, 7200, true);
  const d2 = await delegate(a, d1, 200_000, 3600, true);
  const d3 = await delegate(b, d2, 100_000, 1800, false);
  return { root, d1, d2, d3 };
}

interface Sample {
  key: string;
  instance: string;
  /** Wall-clock ms (Date.now()), the clock the instances judge expiry by. */
  startedAt: number;
  debit: boolean;
  valid: boolean;
  code: string;
}

/** How long the load runs on each side of the moment the key stops. */
const BEFORE_MS = 1000;
const AFTER_MS = 1000;
/** PER_PAUSE launches every PACE_MS ms (timers run late on a busy machine): a few hundred requests in all. */
const PACE_MS = 5;
const PER_PAUSE = 2;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
let seq = 0;

/** One verification, every other one a 1-cent debit: both paths must see the tree stop. */
async function verifyOnce(inst: Instance, name: string, key: string, debit: boolean): Promise<Sample> {
  const startedAt = Date.now();
  const body = debit ? { key, verb: 'call', cost_cents: 1, request_id: `fleet-${++seq}-${randomUUID()}` } : { key, verb: 'call' };
  const res = await http(inst.adminBase, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });
  expect(res.status, `${name} on ${inst.name}: ${JSON.stringify(res.body)}`).toBe(200);
  return { key: name, instance: inst.name, startedAt, debit, valid: res.body.valid, code: res.body.code };
}

/**
 * Verifies the named keys, round robin over both instances, from BEFORE_MS before `act` until
 * AFTER_MS after the moment it reports (the instant from which every key it stops must answer
 * invalid). Returns every sample and that moment.
 */
async function loadAround(keys: Record<string, Held>, act: () => Promise<number>) {
  const names = Object.keys(keys);
  const samples: Promise<Sample>[] = [];
  let stoppedAt = Number.NaN;
  let acting: Promise<void> | undefined;
  const started = Date.now();
  for (let i = 0; ; i++) {
    const now = Date.now();
    if (now - started > 20_000) throw new Error('the action never reported its instant');
    if (!acting && now - started >= BEFORE_MS) acting = act().then((at) => void (stoppedAt = at));
    // NaN (not yet known) compares false.
    if (now > stoppedAt + AFTER_MS) break;
    // Every key on both instances, with and without a debit, in turn.
    const n = names.length;
    const name = names[i % n]!;
    const inst = Math.floor(i / n) % 2 === 0 ? a : b;
    samples.push(verifyOnce(inst, name, keys[name]!.plaintext, Math.floor(i / (2 * n)) % 2 === 1));
    if (i % PER_PAUSE === PER_PAUSE - 1) await pause(PACE_MS);
  }
  await acting;
  return { samples: await Promise.all(samples), stoppedAt };
}

/** Every sample of `stopped` keys that started after the instant is invalid; the race was real on both instances. */
function expectStoppedAfter(samples: Sample[], stoppedAt: number, stopped: string[]): void {
  // The load was real: a few hundred requests on a quiet machine, over a hundred on a busy one.
  expect(samples.length).toBeGreaterThan(100);
  const mine = samples.filter((s) => stopped.includes(s.key));
  const before = mine.filter((s) => s.startedAt < stoppedAt - 50);
  const after = mine.filter((s) => s.startedAt > stoppedAt);
  // The keys worked until shortly before, through both paths.
  expect(before.length).toBeGreaterThan(20);
  expect(before.filter((s) => s.valid).length).toBeGreaterThan(10);
  expect(before.some((s) => s.debit && s.valid)).toBe(true);
  for (const key of stopped) {
    for (const inst of [a, b]) {
      for (const debit of [false, true]) expect(after.filter((s) => s.key === key && s.instance === inst.name && s.debit === debit).length).toBeGreaterThan(2);
    }
  }
  expect(after.filter((s) => s.valid).map((s) => `${s.key} on ${s.instance}${s.debit ? ' (debit)' : ''}`)).toEqual([]);
  expect(after.filter((s) => s.code !== 'invalid_api_key')).toEqual([]);
}

describe('a delegated key stopped under load on two instances', () => {
  it('revoked by its parent: its subtree answers invalid on both instances from the answer on; the root works on', async () => {
    const { root, d1, d2, d3 } = await tree();
    const { samples, stoppedAt } = await loadAround({ root, d2, d3 }, async () => {
      const res = await http(a.base, 'DELETE', `/v1/agents/self/keys/${d1.id}`, { token: root.plaintext });
      expect(res.status).toBe(200);
      return Date.now();
    });
    expectStoppedAfter(samples, stoppedAt, ['d2', 'd3']);
    expect(samples.filter((s) => s.key === 'root' && !s.valid)).toEqual([]);
  });

  it('suspended by the service key: its subtree answers invalid from the answer on, and works again once resumed', async () => {
    const { root, d1, d2, d3 } = await tree();
    const { samples, stoppedAt } = await loadAround({ root, d2, d3 }, async () => {
      const res = await http(b.base, 'POST', `/v1/keys/${d1.id}/suspend`, { token: serviceKey, body: { reason: 'fleet' } });
      expect(res.status).toBe(200);
      return Date.now();
    });
    expectStoppedAfter(samples, stoppedAt, ['d2', 'd3']);
    expect(samples.filter((s) => s.key === 'root' && !s.valid)).toEqual([]);
    expect((await http(a.base, 'POST', `/v1/keys/${d1.id}/resume`, { token: serviceKey })).status).toBe(200);
    for (const inst of [a, b]) {
      for (const k of [d2, d3]) expect((await verifyOnce(inst, 'resumed', k.plaintext, true)).valid).toBe(true);
    }
  });

  it('expiring (its expiry passed without any write below it): its subtree answers invalid on both instances from that instant', async () => {
    const { root, d1, d2, d3 } = await tree();
    // A delegated key's expiry is fixed at delegation (PATCH answers 422) and its shortest life is a
    // minute: the test brings it forward in the database, so only the ancestor check can stop d2, d3.
    const patched = await http(a.base, 'PATCH', `/v1/keys/${d1.id}`, { token: serviceKey, body: { expires_at: new Date(Date.now() + 60_000).toISOString() } });
    expect(patched.status).toBe(422);
    const { samples, stoppedAt } = await loadAround({ root, d2, d3 }, async () => {
      const at = new Date(Date.now() + 1000);
      await database.db.execute(sql`update api_keys set expires_at = ${at.toISOString()}::timestamptz where id = ${d1.id}::uuid`);
      return at.getTime();
    });
    expectStoppedAfter(samples, stoppedAt, ['d2', 'd3']);
    expect(samples.filter((s) => s.key === 'root' && !s.valid)).toEqual([]);
  });

  it("its root's expiry brought forward by PATCH: the whole tree answers invalid on both instances from that instant", async () => {
    const { root, d1, d2, d3 } = await tree();
    const { samples, stoppedAt } = await loadAround({ d1, d2, d3 }, async () => {
      const at = new Date(Date.now() + 1500);
      const res = await http(b.base, 'PATCH', `/v1/keys/${root.id}`, { token: serviceKey, body: { expires_at: at.toISOString() } });
      expect(res.status).toBe(200);
      return at.getTime();
    });
    expectStoppedAfter(samples, stoppedAt, ['d1', 'd2', 'd3']);
  });
});

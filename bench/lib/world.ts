import type pg from 'pg';
import { once } from './load.js';
import type { World } from './scenarios.js';
import { seedChildKeys, seedClient, seedEvents, verifyChainSlice, type Tenant } from './seed.js';

/*
 * The world a bench run measures, built on a running keyplane: tenants through its own internal API
 * (POST /internal/v1/bootstrap, so their keys and events are whatever that build makes), bulk child
 * keys and history with plain SQL on the stable tables. Nothing here imports keyplane's source, so
 * the same code seeds two different builds identically (the A/B mode).
 */

export interface Origins {
  public: string;
  admin: string;
}

export interface WorldOptions {
  origins: Origins;
  databaseUrl: string;
  adminToken: string;
  smallKeys: number;
  rotatePool: number;
  scale?: { keys: number; events: number };
  log: (s: string) => void;
}

const json = { 'content-type': 'application/json' };

async function bootstrapTenant(c: pg.Client, o: WorldOptions, name: string): Promise<Tenant> {
  const res = await once(o.origins.admin, 'POST', '/internal/v1/bootstrap', { ...json, authorization: `Bearer ${o.adminToken}` }, JSON.stringify({ name }));
  if (res.status !== 201) throw new Error(`bootstrap answered ${res.status}: ${res.text}`);
  const b = JSON.parse(res.text) as { account_id: string; service_key: string; api_key: string };
  const sk = await c.query<{ id: string; key_prefix: string }>('select id, key_prefix from service_keys where account_id = $1', [b.account_id]);
  // The account's only API key so far: the portal key bootstrap made (no creator).
  const ak = await c.query<{ id: string; key_prefix: string }>('select id, key_prefix from api_keys where account_id = $1 and created_by_service_key_id is null', [b.account_id]);
  if (sk.rows.length !== 1 || ak.rows.length !== 1) throw new Error(`bootstrap of ${name}: ${sk.rows.length} service keys, ${ak.rows.length} API keys`);
  return {
    accountId: b.account_id,
    serviceKeyId: sk.rows[0]!.id,
    serviceKey: b.service_key,
    serviceKeyPrefix: sk.rows[0]!.key_prefix,
    apiKeyId: ak.rows[0]!.id,
    apiKey: b.api_key,
    apiKeyPrefix: ak.rows[0]!.key_prefix,
  };
}

/**
 * A full audit page from the first request on: 110 reads of the feed by the tenant's API key, each
 * recording an audit_read event (otherwise the page's size, and so its cost, would depend on what
 * ran before the scenario).
 */
async function fillAuditFeed(o: WorldOptions, t: Tenant): Promise<void> {
  const headers = { authorization: `Bearer ${t.apiKey}` };
  for (let batch = 0; batch < 11; batch++) {
    const answers = await Promise.all(Array.from({ length: 10 }, () => once(o.origins.public, 'GET', '/v1/audit?limit=1', headers)));
    const bad = answers.find((a) => a.status !== 200);
    if (bad) throw new Error(`audit read answered ${bad.status}: ${bad.text}`);
  }
}

/** A child key with a plaintext, for the verify scenarios; undefined when the build has no verify route. */
async function verifyKeyOf(o: WorldOptions, t: Tenant): Promise<string | undefined> {
  const auth = { ...json, authorization: `Bearer ${t.serviceKey}` };
  const minted = await once(o.origins.public, 'POST', '/v1/keys', { ...auth, 'idempotency-key': 'bench-verify-key' }, JSON.stringify({ name: 'verify' }));
  if (minted.status !== 201) throw new Error(`mint answered ${minted.status}: ${minted.text}`);
  const key = (JSON.parse(minted.text) as { key: { plaintext_key: string } }).key.plaintext_key;
  const probe = await once(o.origins.admin, 'POST', '/internal/v1/verify', { ...json, authorization: `Bearer ${o.adminToken}` }, JSON.stringify({ key, verb: 'read' }));
  return probe.status === 200 ? key : undefined;
}

/** The levels below a delegating root: its depth-3 descendant is the key the delegated verifies use. */
const DELEGATION_DEPTH = 3;
/** The largest budget (and cap) there is, at every level: 100M debits of 1¢, so no cap binds in a run. */
const DELEGATED_BUDGET_CENTS = 100_000_000;

/**
 * A depth-3 delegated key with a plaintext, as an agent fleet builds one: a root minted by the
 * service key with can_delegate and the largest cap, delegating through POST /v1/agents/self/keys
 * (each level with its own key) down to depth 3. Undefined when the build has no delegation (A/B
 * against an older ref: the mint refuses can_delegate, or the route is missing).
 */
async function delegatedKeyOf(o: WorldOptions, t: Tenant): Promise<string | undefined> {
  const auth = { ...json, authorization: `Bearer ${t.serviceKey}` };
  const rootBody = JSON.stringify({ name: 'delegating root', permissions: 'full', monthly_cap_cents: DELEGATED_BUDGET_CENTS, can_delegate: true });
  const root = await once(o.origins.public, 'POST', '/v1/keys', { ...auth, 'idempotency-key': 'bench-delegating-root' }, rootBody);
  if (root.status === 400 || root.status === 422) return undefined;
  if (root.status !== 201) throw new Error(`delegating root mint answered ${root.status}: ${root.text}`);
  let key = (JSON.parse(root.text) as { key: { plaintext_key: string } }).key.plaintext_key;
  for (let depth = 1; depth <= DELEGATION_DEPTH; depth++) {
    const body = JSON.stringify({
      name: `delegated depth ${depth}`,
      permissions: 'full',
      budget_cents: DELEGATED_BUDGET_CENTS,
      // A day less at each level: a delegated key never outlives its parent.
      ttl_seconds: 86_400 * (DELEGATION_DEPTH + 1 - depth),
      can_delegate: depth < DELEGATION_DEPTH,
    });
    const child = await once(o.origins.public, 'POST', '/v1/agents/self/keys', { ...json, authorization: `Bearer ${key}`, 'idempotency-key': `bench-delegate-${depth}` }, body);
    if (child.status === 404) return undefined;
    if (child.status !== 201) throw new Error(`delegation to depth ${depth} answered ${child.status}: ${child.text}`);
    key = (JSON.parse(child.text) as { key: { plaintext_key: string } }).key.plaintext_key;
  }
  // Both scenarios count any 200 as done: check here that they are valid answers, not refusals.
  for (const body of [{ key, verb: 'read' }, { key, verb: 'call', cost_cents: 1, request_id: 'bench-delegated-probe' }]) {
    const probe = await once(o.origins.admin, 'POST', '/internal/v1/verify', { ...json, authorization: `Bearer ${o.adminToken}` }, JSON.stringify(body));
    if (probe.status !== 200 || (JSON.parse(probe.text) as { valid?: boolean }).valid !== true) throw new Error(`verify of the depth-3 key answered ${probe.status}: ${probe.text}`);
  }
  return key;
}

async function seedScale(c: pg.Client, o: WorldOptions, scale: { keys: number; events: number }): Promise<World['scale']> {
  const t = await bootstrapTenant(c, o, 'bench scale');
  const ids = await seedChildKeys(c, t, scale.keys, 'scale');
  o.log(`seeded ${scale.keys} keys; seeding ${scale.events} chained events…`);
  const head = Number((await c.query<{ s: string }>('select chain_seq as s from accounts where id = $1', [t.accountId])).rows[0]!.s);
  await seedEvents(c, t, scale.events);
  // The seams of the seeded history: where it joins the live chain, and its last links.
  await verifyChainSlice(c, t.accountId, head - 1, head + 3);
  await verifyChainSlice(c, t.accountId, head + scale.events - 3, head + scale.events);
  return { tenant: t, keyId: ids[Math.floor(ids.length / 2)]! };
}

/** Seeds the world on a running keyplane and its database; returns it with the seconds it took. */
export async function buildWorld(o: WorldOptions): Promise<{ world: World; seedSeconds: number }> {
  const t0 = performance.now();
  const c = await seedClient(o.databaseUrl);
  try {
    const read = await bootstrapTenant(c, o, 'bench read');
    const readKeyIds = await seedChildKeys(c, read, o.smallKeys, 'read');
    const mint = await bootstrapTenant(c, o, 'bench mint');
    const rotate = await bootstrapTenant(c, o, 'bench rotate');
    const rotatePool = await seedChildKeys(c, rotate, o.rotatePool, 'rotate');
    const scale = o.scale ? await seedScale(c, o, o.scale) : undefined;
    await fillAuditFeed(o, read);
    const verifyKey = await verifyKeyOf(o, mint);
    const delegatedKey = verifyKey ? await delegatedKeyOf(o, mint) : undefined;
    await c.query('vacuum analyze');
    // The seed wrote WAL and dirty pages (~1 GB at scale); without a checkpoint here the checkpointer
    // writes them out during the first measured runs, and its CPU and I/O land on those scenarios
    // (a run without it: GET /v1/keys/{id} 0.63, Postgres 144 µs per request against 77-95 elsewhere).
    await c.query('checkpoint');
    const world: World = { read, readKeyId: readKeyIds[0]!, mint, rotate, rotatePool, scale, adminToken: o.adminToken, verifyKey, delegatedKey };
    return { world, seedSeconds: (performance.now() - t0) / 1000 };
  } finally {
    await c.end();
  }
}

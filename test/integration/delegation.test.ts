import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { TIER_VERBS } from '../../src/domain/verify/rules.js';
import { mintChild } from '../support/child-keys.js';
import { chain, delegate, delegated, delegationBody, idemKey, rootKey } from '../support/delegation.js';
import { call, createTenant, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * POST /v1/agents/self/keys: the rules a delegation meets (tier, line, lifetime, depth), its
 * idempotency and the budget carved out of the parent's cap.
 */

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const TIERS = ['full', 'call_only', 'sms_only', 'read_only'] as const;
const self = async (key: string) => (await call(t.app, 'GET', '/v1/agents/self', { token: key })).body;

describe('narrowing', () => {
  it('every (parent tier, child tier) pair: allowed iff the child\'s verbs are a subset of the parent\'s', async () => {
    const seen = { allowed: 0, refused: 0 };
    for (const parentTier of TIERS) {
      const parent = await rootKey(t, tenant, { permissions: parentTier, monthlyCapCents: null });
      for (const childTier of TIERS) {
        const pair = `${parentTier} → ${childTier}`;
        const res = await delegate(t, parent.plaintext, delegationBody({ permissions: childTier }));
        const subset = TIER_VERBS[childTier].every((v) => TIER_VERBS[parentTier].includes(v));
        if (subset) {
          expect(res.status, pair).toBe(201);
          expect(res.body.key.permissions, pair).toBe(childTier);
          seen.allowed++;
        } else {
          expect(res.status, pair).toBe(403);
          expect(errorCode(res), pair).toBe('agent_permission_denied');
          expect(res.body.error.details[0], pair).toMatchObject({ field: 'permissions', tier: parentTier });
          seen.refused++;
        }
      }
    }
    // full gives all 4, call_only and sms_only themselves and read_only, read_only only itself.
    expect(seen).toEqual({ allowed: 4 + 2 + 2 + 1, refused: 7 });
  });

  it('a line-scoped parent: its child gets its line when line_id is omitted, null or equal; another line is 403', async () => {
    const line = randomUUID();
    const parent = await rootKey(t, tenant, { lineId: line });
    for (const over of [{}, { line_id: null }, { line_id: line }, { line_id: line.toUpperCase() }]) {
      const res = await delegate(t, parent.plaintext, delegationBody(over));
      expect(res.status, JSON.stringify(over)).toBe(201);
      expect(res.body.key.line_id).toBe(line);
    }
    const other = await delegate(t, parent.plaintext, delegationBody({ line_id: randomUUID() }));
    expect(other.status).toBe(403);
    expect(errorCode(other)).toBe('agent_scope_error');
    expect(other.body.error.details[0]).toMatchObject({ field: 'line_id', line_id: line });
  });

  it('an unscoped parent may give any line, or none', async () => {
    const parent = await rootKey(t, tenant);
    const line = randomUUID();
    expect((await delegated(t, parent.plaintext, { line_id: line })).body.key.line_id).toBe(line);
    expect((await delegated(t, parent.plaintext)).body.key.line_id).toBeNull();
  });

  it('a lifetime past the parent\'s expiry is 422 on ttl_seconds; up to it is fine', async () => {
    t.clock.freeze();
    try {
      const parent = await rootKey(t, tenant, { ttlSeconds: 600 });
      const res = await delegate(t, parent.plaintext, delegationBody({ ttl_seconds: 601 }));
      expect(res.status).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
      expect(res.body.error.details[0]).toMatchObject({ field: 'ttl_seconds', max: 600 });
      const ok = await delegated(t, parent.plaintext, { ttl_seconds: 600 });
      expect(ok.body.delegation.expires_at).toBe(parent.row.expiresAt!.toISOString());
      expect(ok.body.key.expires_at).toBe(ok.body.delegation.expires_at);
    } finally {
      t.clock.unfreeze();
    }
  });

  it('depth: a chain of 1, 2, 3 delegations succeeds; the depth-3 key, though it may delegate, is refused', async () => {
    const keys = await chain(t, tenant, 3);
    for (let d = 1; d <= 3; d++) {
      const s = await self(keys[d]!.plaintext);
      expect(s.delegation).toMatchObject({ can_delegate: true, depth: d, parent_key_id: keys[d - 1]!.id });
    }
    const res = await delegate(t, keys[3]!.plaintext, delegationBody());
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('delegation_depth_exceeded');
  });

  it('the delegation answer: the key object (can_delegate, parent_key_id) and the delegation', async () => {
    const parent = await rootKey(t, tenant, { permissions: 'call_only', monthlyCapCents: 10_000 });
    t.clock.freeze();
    const res = await delegate(t, parent.plaintext, delegationBody({ permissions: 'read_only', budget_cents: 250, ttl_seconds: 120, agent_label: 'sub.1' }));
    const now = t.clock.now();
    t.clock.unfreeze();
    expect(res.status).toBe(201);
    expect(res.body.key).toMatchObject({
      permissions: 'read_only',
      monthly_cap_cents: 250,
      monthly_spend_cents: 0,
      agent_label: 'sub.1',
      can_delegate: false,
      parent_key_id: parent.id,
      created_by_service_key_id: tenant.serviceKeyId,
    });
    expect(res.body.key.plaintext_key).toMatch(/^sk_test_/);
    expect(res.body.delegation).toEqual({
      parent_key_id: parent.id,
      depth: 1,
      budget_cents: 250,
      expires_at: new Date(now.getTime() + 120_000).toISOString(),
    });
  });

  it('a key without can_delegate is 403 agent_permission_denied, and so is a delegated key left at the default', async () => {
    const plain = await mintChild(t, tenant);
    const res = await delegate(t, plain.plaintext, delegationBody());
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('agent_permission_denied');
    const root = await rootKey(t, tenant);
    const child = await delegated(t, root.plaintext);
    expect(child.body.key.can_delegate).toBe(false);
    const again = await delegate(t, child.plaintext, delegationBody());
    expect(again.status).toBe(403);
    expect(errorCode(again)).toBe('agent_permission_denied');
  });

  it('a service key is not an agent: 401', async () => {
    const res = await delegate(t, tenant.serviceKey, delegationBody());
    expect(res.status).toBe(401);
    expect(errorCode(res)).toBe('invalid_api_key');
  });

  it('no Idempotency-Key is 400 missing_idempotency_key, and nothing is minted', async () => {
    const root = await rootKey(t, tenant);
    const res = await delegate(t, root.plaintext, delegationBody(), null);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('missing_idempotency_key');
    expect((await self(root.plaintext)).delegation.reserved_cents).toBe(0);
  });

  it.each([
    ['budget 0', { budget_cents: 0 }],
    ['budget above 100,000,000', { budget_cents: 100_000_001 }],
    ['fractional budget', { budget_cents: 1.5 }],
    ['ttl 59', { ttl_seconds: 59 }],
    ['ttl 2592001', { ttl_seconds: 2_592_001 }],
    ['unknown field', { monthly_cap_cents: 5 }],
    ['legacy_full', { permissions: 'legacy_full' }],
    ['no permissions', { permissions: undefined }],
    ['no budget', { budget_cents: undefined }],
    ['no ttl', { ttl_seconds: undefined }],
    ['bad line_id', { line_id: 'line-1' }],
  ])('422 validation_error: %s', async (_name, over) => {
    const root = await rootKey(t, tenant);
    const res = await delegate(t, root.plaintext, delegationBody(over));
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
  });

  it('ttl 60 and 2,592,000 are the bounds, both accepted', async () => {
    const root = await rootKey(t, tenant);
    expect((await delegate(t, root.plaintext, delegationBody({ ttl_seconds: 60 }))).status).toBe(201);
    expect((await delegate(t, root.plaintext, delegationBody({ ttl_seconds: 2_592_000 }))).status).toBe(201);
  });
});

describe('idempotency', () => {
  it('a replay (same key and body) answers the same key without the plaintext, marked Idempotent-Replayed', async () => {
    const root = await rootKey(t, tenant, { monthlyCapCents: 1000 });
    const idem = idemKey();
    const body = delegationBody({ budget_cents: 300 });
    const first = await delegate(t, root.plaintext, body, idem);
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const replay = await delegate(t, root.plaintext, body, idem);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.key.id).toBe(first.body.key.id);
    expect(replay.body.key.plaintext_key).toBeUndefined();
    expect(replay.body.delegation).toEqual(first.body.delegation);
    // One child, reserved once.
    expect((await self(root.plaintext)).delegation).toMatchObject({ reserved_cents: 300, available_cents: 700 });
  });

  it('the same Idempotency-Key with another body is 409 idempotency_key_reused', async () => {
    const root = await rootKey(t, tenant);
    const idem = idemKey();
    expect((await delegate(t, root.plaintext, delegationBody({ budget_cents: 10 }), idem)).status).toBe(201);
    const res = await delegate(t, root.plaintext, delegationBody({ budget_cents: 11 }), idem);
    expect(res.status).toBe(409);
    expect(errorCode(res)).toBe('idempotency_key_reused');
  });

  it('is scoped per API key: two agents use the same Idempotency-Key independently', async () => {
    const idem = idemKey();
    const a = await rootKey(t, tenant);
    const b = await rootKey(t, tenant);
    const fromA = await delegate(t, a.plaintext, delegationBody(), idem);
    const fromB = await delegate(t, b.plaintext, delegationBody(), idem);
    expect(fromA.status).toBe(201);
    expect(fromB.status).toBe(201);
    expect(fromB.headers['idempotent-replayed']).toBeUndefined();
    expect(fromB.body.key.id).not.toBe(fromA.body.key.id);
    expect(fromB.body.key.plaintext_key).toMatch(/^sk_test_/);
    expect(fromA.body.delegation.parent_key_id).toBe(a.id);
    expect(fromB.body.delegation.parent_key_id).toBe(b.id);
    // The same key with another body from b is still its own reuse.
    expect((await delegate(t, b.plaintext, delegationBody({ name: 'other' }), idem)).status).toBe(409);
  });
});

describe('budget at delegation', () => {
  it('children of 400 and 400 fit a cap of 1000; 300 more is 402 with 200 available; revoking one gives 400 back', async () => {
    const root = await rootKey(t, tenant, { monthlyCapCents: 1000 });
    const a = await delegated(t, root.plaintext, { budget_cents: 400 });
    await delegated(t, root.plaintext, { budget_cents: 400 });
    const over = await delegate(t, root.plaintext, delegationBody({ budget_cents: 300 }));
    expect(over.status).toBe(402);
    expect(errorCode(over)).toBe('agent_cap_exceeded');
    expect(over.body.error.details[0]).toMatchObject({ field: 'budget_cents', available_cents: 200, budget_cents: 300, cap_cents: 1000, spent_cents: 800 });
    expect((await self(root.plaintext)).delegation).toEqual({ can_delegate: true, depth: 0, parent_key_id: null, reserved_cents: 800, available_cents: 200 });
    const revoked = await call(t.app, 'DELETE', `/v1/agents/self/keys/${a.id}`, { token: root.plaintext });
    expect(revoked.status).toBe(200);
    expect(revoked.body.key.revoked_at).not.toBeNull();
    expect((await self(root.plaintext)).delegation).toMatchObject({ reserved_cents: 400, available_cents: 600 });
    // Exactly the available amount fits.
    expect((await delegate(t, root.plaintext, delegationBody({ budget_cents: 600 }))).status).toBe(201);
    expect((await self(root.plaintext)).delegation.available_cents).toBe(0);
  });

  it('a parent without a cap gives any budget; its available amount is null', async () => {
    const root = await rootKey(t, tenant, { monthlyCapCents: null });
    await delegated(t, root.plaintext, { budget_cents: 100_000_000 });
    await delegated(t, root.plaintext, { budget_cents: 100_000_000 });
    expect((await self(root.plaintext)).delegation).toMatchObject({ reserved_cents: 200_000_000, available_cents: null });
  });

  it('a delegated key delegates out of its own budget', async () => {
    const root = await rootKey(t, tenant, { monthlyCapCents: 1000 });
    const child = await delegated(t, root.plaintext, { budget_cents: 500, can_delegate: true });
    await delegated(t, child.plaintext, { budget_cents: 450, ttl_seconds: 1800 });
    const over = await delegate(t, child.plaintext, delegationBody({ budget_cents: 51, ttl_seconds: 1800 }));
    expect(over.status).toBe(402);
    expect(over.body.error.details[0].available_cents).toBe(50);
    // The grandchild's budget is inside the child's: the root still sees 500 reserved.
    expect((await self(root.plaintext)).delegation).toMatchObject({ reserved_cents: 500, available_cents: 500 });
  });

  it('each tenant\'s trees are its own: another account\'s key cannot be revoked through delegation', async () => {
    const other = await createTenant(t);
    const root = await rootKey(t, other);
    const child = await delegated(t, root.plaintext);
    const mine = await rootKey(t, tenant);
    const res = await call(t.app, 'DELETE', `/v1/agents/self/keys/${child.id}`, { token: mine.plaintext });
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('not_found');
  });
});

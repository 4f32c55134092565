import { eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys } from '../../src/db/schema.js';
import { base62Checksum } from '../../src/domain/auth/credentials.js';
import { toKeyObject } from '../../src/domain/keys/key-object.js';
import { TIER_VERBS, VERBS } from '../../src/domain/verify/rules.js';
import { mintChild, revokeChild, rotateChild } from '../support/child-keys.js';
import { ADMIN_TOKEN, call, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const verify = (body: unknown) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });

const KEY_FIELDS = [
  'id',
  'key_prefix',
  'environment',
  'name',
  'agent_label',
  'line_id',
  'permissions',
  'monthly_cap_cents',
  'monthly_spend_cents',
  'created_at',
  'revoked_at',
  'last_used_at',
  'rotated_from',
  'created_by_service_key_id',
  'expires_at',
  'suspended_at',
  'can_delegate',
  'parent_key_id',
  'account_id',
];

function expectInvalidKey(res: Awaited<ReturnType<typeof verify>>) {
  expect(res.status).toBe(200);
  expect(res.body).toEqual({
    valid: false,
    code: 'invalid_api_key',
    status: 401,
    error: { error: { code: 'invalid_api_key', message: 'The API key is invalid or has been revoked.', details: [] } },
  });
}

describe('POST /internal/v1/verify', () => {
  it('answers a valid key with the 14-field key object plus account_id', async () => {
    const k = await mintChild(t, tenant, { name: 'caller', agentLabel: 'bot-1', monthlyCapCents: 1000 });
    const res = await verify({ key: k.plaintext, verb: 'call' });
    expect(res.status).toBe(200);
    expect(res.body.valid).toBe(true);
    expect(res.body.code).toBe('valid');
    expect(res.body.error).toBeUndefined();
    expect(res.body.status).toBeUndefined();
    expect(Object.keys(res.body.key)).toEqual(KEY_FIELDS);
    expect(res.body.key).toMatchObject({
      id: k.id,
      account_id: tenant.accountId,
      name: 'caller',
      agent_label: 'bot-1',
      permissions: 'full',
      monthly_cap_cents: 1000,
      monthly_spend_cents: 0,
      created_by_service_key_id: tenant.serviceKeyId,
      revoked_at: null,
    });
    expect(res.raw).not.toContain(k.plaintext);
  });

  it("answers the key as toKeyObject of the stored row plus account_id, before and after a debit, byte for byte", async () => {
    const k = await mintChild(t, tenant, { name: 'golden', agentLabel: 'g-1', monthlyCapCents: 500, permissions: 'call_only' });
    const stored = async () => {
      const [row] = await t.database.db.select().from(apiKeys).where(eq(apiKeys.id, k.id));
      return JSON.stringify({ ...toKeyObject(row!, t.clock.now()), account_id: row!.accountId });
    };
    const keyOf = (res: Awaited<ReturnType<typeof verify>>) => JSON.stringify(res.body.key);
    t.clock.freeze();
    try {
      // Without cost: valid (last_used_at written), then refused (nothing written).
      expect(keyOf(await verify({ key: k.plaintext, verb: 'read' }))).toBe(await stored());
      expect(keyOf(await verify({ key: k.plaintext, verb: 'sms' }))).toBe(await stored());
      // With cost: debited, replayed, over the cap, refused by tier.
      t.clock.advance(2_000);
      expect(keyOf(await verify({ key: k.plaintext, verb: 'call', cost_cents: 120, request_id: 'golden-1' }))).toBe(await stored());
      expect(keyOf(await verify({ key: k.plaintext, verb: 'call', cost_cents: 120, request_id: 'golden-1' }))).toBe(await stored());
      expect(keyOf(await verify({ key: k.plaintext, verb: 'call', cost_cents: 400, request_id: 'golden-2' }))).toBe(await stored());
      expect(keyOf(await verify({ key: k.plaintext, verb: 'sms', cost_cents: 1, request_id: 'golden-3' }))).toBe(await stored());
      // And after the debit, without cost.
      t.clock.advance(2_000);
      const after = await verify({ key: k.plaintext, verb: 'read' });
      expect(after.body.key).toMatchObject({ monthly_spend_cents: 120, last_used_at: t.clock.now().toISOString() });
      expect(keyOf(after)).toBe(await stored());
    } finally {
      t.clock.unfreeze();
    }
  });

  it('enforces the tier × verb matrix', async () => {
    const tiers = ['read_only', 'call_only', 'sms_only', 'full'] as const;
    const seen: string[] = [];
    for (const tier of tiers) {
      const k = await mintChild(t, tenant, { permissions: tier });
      for (const verb of VERBS) {
        const res = await verify({ key: k.plaintext, verb });
        expect(res.status).toBe(200);
        const expected = TIER_VERBS[tier].includes(verb);
        seen.push(`${tier}:${verb}:${res.body.valid}`);
        if (expected) {
          expect(res.body).toMatchObject({ valid: true, code: 'valid' });
        } else {
          expect(res.body.valid).toBe(false);
          expect(res.body.code).toBe('agent_permission_denied');
          expect(res.body.status).toBe(403);
          expect(res.body.error.error.code).toBe('agent_permission_denied');
          expect(res.body.error.error.details).toEqual([expect.objectContaining({ tier, verb })]);
          expect(res.body.key.id).toBe(k.id);
        }
      }
    }
    // The matrix itself, written out: what the issue specifies.
    expect(seen).toEqual([
      'read_only:read:true', 'read_only:call:false', 'read_only:sms:false', 'read_only:admin:false',
      'call_only:read:true', 'call_only:call:true', 'call_only:sms:false', 'call_only:admin:false',
      'sms_only:read:true', 'sms_only:call:false', 'sms_only:sms:true', 'sms_only:admin:false',
      'full:read:true', 'full:call:true', 'full:sms:true', 'full:admin:true',
    ]);
  });

  it('legacy_full portal keys may do everything', async () => {
    for (const verb of VERBS) {
      const res = await verify({ key: tenant.apiKey, verb });
      expect(res.body).toMatchObject({ valid: true, code: 'valid', key: { permissions: 'legacy_full', created_by_service_key_id: null } });
    }
  });

  it('a line-scoped key acts only on its own line', async () => {
    const line = '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50';
    const other = '0e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9';
    const k = await mintChild(t, tenant, { lineId: line });
    for (const verb of ['read', 'call', 'sms', 'admin']) {
      expect((await verify({ key: k.plaintext, verb, line_id: line })).body.valid).toBe(true);
      expect((await verify({ key: k.plaintext, verb, line_id: line.toUpperCase() })).body.valid).toBe(true);
      const res = await verify({ key: k.plaintext, verb, line_id: other });
      expect(res.body).toMatchObject({ valid: false, code: 'agent_scope_error', status: 403 });
      expect(res.body.error.error).toMatchObject({ code: 'agent_scope_error', message: 'The key is scoped to another line.' });
      expect(res.body.error.error.details).toEqual([expect.objectContaining({ field: 'line_id', line_id: other })]);
    }
    // No line named: reading is allowed, acting on a line (or account-wide) is not.
    expect((await verify({ key: k.plaintext, verb: 'read' })).body.valid).toBe(true);
    for (const verb of ['call', 'sms', 'admin']) {
      const res = await verify({ key: k.plaintext, verb, line_id: null });
      expect(res.body).toMatchObject({ valid: false, code: 'agent_scope_error', status: 403 });
      expect(res.body.error.error.details).toEqual([expect.objectContaining({ field: 'line_id', line_id: null })]);
    }
    // An unscoped key may act on any line.
    const free = await mintChild(t, tenant);
    expect((await verify({ key: free.plaintext, verb: 'call', line_id: other })).body.valid).toBe(true);
  });

  it('permission is checked before line scope', async () => {
    const k = await mintChild(t, tenant, { permissions: 'read_only', lineId: '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50' });
    const res = await verify({ key: k.plaintext, verb: 'call', line_id: '0e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9' });
    expect(res.body.code).toBe('agent_permission_denied');
  });

  it('a verify with cost refuses and allows exactly as one without: every tier, verb and line', async () => {
    // With cost_cents the checks run inside the debit statement (migration 0013), from the tiers and
    // line rule of rules.ts, sent as data; without, in JavaScript. Both must agree everywhere.
    const line = '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50';
    const other = '0e4f2a1b-9c8d-4e7f-a6b5-c4d3e2f1a0b9';
    const keys: { label: string; plaintext: string }[] = [{ label: 'legacy_full', plaintext: tenant.apiKey }];
    for (const permissions of ['read_only', 'call_only', 'sms_only', 'full'] as const) {
      for (const lineId of [undefined, line]) {
        const k = await mintChild(t, tenant, { permissions, lineId });
        keys.push({ label: `${permissions}${lineId ? '@line' : ''}`, plaintext: k.plaintext });
      }
    }
    const requestLines: (string | undefined)[] = [undefined, line, line.toUpperCase(), other];
    const outcomes = new Set<string>();
    let n = 0;
    for (const k of keys) {
      for (const verb of VERBS) {
        for (const line_id of requestLines) {
          const body = { key: k.plaintext, verb, ...(line_id === undefined ? {} : { line_id }) };
          const plain = await verify(body);
          const paid = await verify({ ...body, cost_cents: 1, request_id: `parity-${n++}` });
          const where = `${k.label} ${verb} line=${line_id ?? 'none'}`;
          expect(paid.status, where).toBe(200);
          expect(paid.body.code, where).toBe(plain.body.code);
          expect(paid.body.status, where).toBe(plain.body.status);
          expect(paid.body.error, where).toEqual(plain.body.error);
          expect(paid.body.key.id, where).toBe(plain.body.key.id);
          if (paid.body.valid) expect(paid.body.debit, where).toMatchObject({ cost_cents: 1, replayed: false });
          else expect(paid.body.debit, where).toBeUndefined();
          outcomes.add(plain.body.code);
        }
      }
    }
    // The grid reached every refusal a key that exists can meet.
    expect([...outcomes].sort()).toEqual(['agent_permission_denied', 'agent_scope_error', 'valid']);
  });

  it('a revoked key is invalid on the very next call', async () => {
    const k = await mintChild(t, tenant);
    expect((await verify({ key: k.plaintext, verb: 'read' })).body.valid).toBe(true);
    await revokeChild(t, tenant, k.id);
    expectInvalidKey(await verify({ key: k.plaintext, verb: 'read' }));
  });

  it('after a rotation the old key is invalid and the new key valid', async () => {
    const k = await mintChild(t, tenant, { permissions: 'call_only' });
    const next = await rotateChild(t, tenant, k.id);
    expectInvalidKey(await verify({ key: k.plaintext, verb: 'call' }));
    const res = await verify({ key: next.plaintext, verb: 'call' });
    expect(res.body).toMatchObject({ valid: true, key: { id: next.id, rotated_from: k.id, permissions: 'call_only' } });
  });

  it('unknown, malformed, bad-checksum and service keys are all the same invalid_api_key', async () => {
    const k = await mintChild(t, tenant);
    const body = k.plaintext.slice(0, -6);
    const flipped = withLastCharChanged(body);
    const unknown = flipped + base62Checksum(flipped);
    const badChecksum = body + (k.plaintext.endsWith('000000') ? '111111' : '000000');
    for (const key of [unknown, badChecksum, k.plaintext.slice(0, -1), '', 'not a key', tenant.serviceKey, `${k.plaintext} `]) {
      expectInvalidKey(await verify({ key, verb: 'read' }));
    }
  });

  it('concurrent verifications of many keys, which share statements, each get their own key\'s answer', async () => {
    const keys = await Promise.all(
      (['read_only', 'call_only', 'sms_only', 'full', 'full'] as const).map((permissions, i) => mintChild(t, tenant, { permissions, name: `batch-${i}` })),
    );
    await revokeChild(t, tenant, keys[4]!.id);
    const unknown = withLastCharChanged(keys[0]!.plaintext);
    const cases = Array.from({ length: 80 }, (_, i) => ({ k: i % 6, verb: VERBS[Math.floor(i / 6) % VERBS.length]! }));
    // With costs too: their rows are read by a batched statement of their own.
    const answers = await Promise.all(
      cases.map(({ k, verb }, i) =>
        verify(k === 5 ? { key: unknown, verb } : i % 4 === 0 ? { key: keys[k]!.plaintext, verb, cost_cents: 1, request_id: `batch-${i}` } : { key: keys[k]!.plaintext, verb }),
      ),
    );
    const tiers = ['read_only', 'call_only', 'sms_only', 'full'] as const;
    answers.forEach((res, i) => {
      const { k, verb } = cases[i]!;
      expect(res.status).toBe(200);
      if (k >= 4) return expectInvalidKey(res);
      expect(res.body.key.id).toBe(keys[k]!.id);
      const allowed = TIER_VERBS[tiers[k]!].includes(verb);
      expect([res.body.valid, res.body.code]).toEqual(allowed ? [true, 'valid'] : [false, 'agent_permission_denied']);
    });
  });

  it('updates last_used_at, at most once per second per key', async () => {
    const k = await mintChild(t, tenant, { permissions: 'read_only' });
    expect(k.row.lastUsedAt).toBeNull();
    const first = await verify({ key: k.plaintext, verb: 'read' });
    const stamp: string = first.body.key.last_used_at;
    expect(stamp).not.toBeNull();
    expect(Math.abs(new Date(stamp).getTime() - t.clock.now().getTime())).toBeLessThan(1_000);
    // Within the same second: no write, the stored stamp stays.
    t.clock.advance(500);
    expect((await verify({ key: k.plaintext, verb: 'read' })).body.key.last_used_at).toBe(stamp);
    // A refused verify is not a use.
    t.clock.advance(1_000);
    const refused = await verify({ key: k.plaintext, verb: 'call' });
    expect(refused.body.valid).toBe(false);
    expect(refused.body.key.last_used_at).toBe(stamp);
    // More than a second later: written again.
    const later = await verify({ key: k.plaintext, verb: 'read' });
    expect(new Date(later.body.key.last_used_at).getTime()).toBeGreaterThanOrEqual(new Date(stamp).getTime() + 1_500);
  });

  it('keys minted, changed and rotated through the public /v1/keys routes verify; every change applies at once', async () => {
    const line = '7b0c5a52-3f0e-4a57-9d0c-7b1c2d3e4f50';
    const minted = await call(t.app, 'POST', '/v1/keys', {
      token: tenant.serviceKey,
      body: { name: 'sms agent', permissions: 'sms_only', line_id: line, monthly_cap_cents: 50 },
      headers: { 'idempotency-key': `verify-mint-${Date.now()}` },
    });
    expect(minted.status).toBe(201);
    const { id, plaintext_key: key } = minted.body.key;
    expect((await verify({ key, verb: 'sms', line_id: line })).body).toMatchObject({ valid: true, key: { id, permissions: 'sms_only' } });
    expect((await verify({ key, verb: 'call', line_id: line })).body.code).toBe('agent_permission_denied');

    const patch = (body: unknown) => call(t.app, 'PATCH', `/v1/keys/${id}`, { token: tenant.serviceKey, body });
    expect((await patch({ permissions: 'call_only' })).status).toBe(200);
    expect((await verify({ key, verb: 'call', line_id: line })).body.valid).toBe(true);
    expect((await verify({ key, verb: 'sms', line_id: line })).body.code).toBe('agent_permission_denied');
    expect((await patch({ line_id: null })).status).toBe(200);
    expect((await verify({ key, verb: 'call' })).body.valid).toBe(true);
    expect((await verify({ key, verb: 'call', cost_cents: 60, request_id: `p-${id}` })).body.code).toBe('agent_cap_exceeded');
    expect((await patch({ monthly_cap_cents: null })).status).toBe(200);
    expect((await verify({ key, verb: 'call', cost_cents: 60, request_id: `p-${id}` })).body.valid).toBe(true);

    const rotated = await call(t.app, 'POST', `/v1/keys/${id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': `verify-rot-${id}` } });
    expect(rotated.status).toBe(201);
    expectInvalidKey(await verify({ key, verb: 'call' }));
    expect((await verify({ key: rotated.body.key.plaintext_key, verb: 'call' })).body).toMatchObject({
      valid: true,
      key: { rotated_from: id, monthly_spend_cents: 60 },
    });
    expect((await call(t.app, 'DELETE', `/v1/keys/${rotated.body.key.id}`, { token: tenant.serviceKey })).status).toBe(200);
    expectInvalidKey(await verify({ key: rotated.body.key.plaintext_key, verb: 'call' }));
  });

  it('requires the operator token and is not served on the public listener', async () => {
    const k = await mintChild(t, tenant);
    const none = await call(t.admin, 'POST', '/internal/v1/verify', { body: { key: k.plaintext, verb: 'read' } });
    expect(none.status).toBe(401);
    expect(errorCode(none)).toBe('unauthorized');
    const wrong = await call(t.admin, 'POST', '/internal/v1/verify', { token: k.plaintext, body: { key: k.plaintext, verb: 'read' } });
    expect(wrong.status).toBe(401);
    expect(errorCode(wrong)).toBe('invalid_api_key');
    const pub = await call(t.app, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key: k.plaintext, verb: 'read' } });
    expect(pub.status).toBe(404);
  });

  it('rejects a malformed body with the 422 envelope', async () => {
    const k = await mintChild(t, tenant);
    const bad: unknown[] = [
      {},
      { key: k.plaintext },
      { key: k.plaintext, verb: 'write' },
      { key: k.plaintext, verb: 'read', extra: 1 },
      { key: k.plaintext, verb: 'read', line_id: 'line-1' },
      { key: k.plaintext, verb: 'call', cost_cents: 10 },
      { key: k.plaintext, verb: 'call', cost_cents: 0, request_id: 'r' },
      { key: k.plaintext, verb: 'call', cost_cents: -5, request_id: 'r' },
      { key: k.plaintext, verb: 'call', cost_cents: 1.5, request_id: 'r' },
      { key: k.plaintext, verb: 'call', cost_cents: 100_000_001, request_id: 'r' },
      { key: k.plaintext, verb: 'call', cost_cents: '10', request_id: 'r' },
      { key: k.plaintext, verb: 'call', cost_cents: 10, request_id: 'has space' },
      { key: k.plaintext, verb: 'call', cost_cents: 10, request_id: 'x'.repeat(256) },
      { key: 42, verb: 'read' },
    ];
    for (const body of bad) {
      const res = await verify(body);
      expect(res.status, JSON.stringify(body)).toBe(422);
      expect(errorCode(res)).toBe('validation_error');
    }
    const missingRid = await verify({ key: k.plaintext, verb: 'call', cost_cents: 10 });
    expect(missingRid.body.error.details).toEqual([expect.objectContaining({ field: 'request_id' })]);
    expect((await call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, payload: '{"key":' })).status).toBe(422);
  });
});

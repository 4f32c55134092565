import { sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { mintAgent } from '../support/agents.js';
import { ADMIN_TOKEN, call, errorCode, recordSecrets, type Tenant, type TestApp } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';
import { appTest } from '../support/fixtures.js';

// These tests rotate one agent many times: its own budget (3 per 15 minutes) has its own tests.
const it = appTest({ rateLimit: { limits: { 'agents.self_rotate': { max: 1000, windowSeconds: 900 } } } });

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const INVALID = 'The API key is invalid or has been revoked.';

/*
 * Self-rotation's failed attempts are limited per client address (agents.self_rotate.failures).
 * These tests are about the rotation itself, so each attempt comes from its own address
 * (TEST-NET-2); the limits have their own tests (self-rotation-limit.test.ts).
 */
let nextAddress = 0;
async function rotate(token: string | undefined, body: unknown, prefix = '/v1', payload?: string) {
  const n = nextAddress++;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const res = await t.app.inject({
    method: 'POST',
    url: `${prefix}/agents/self/rotate-key`,
    headers,
    payload: payload ?? (body === undefined ? undefined : JSON.stringify(body)),
    remoteAddress: `198.51.${100 + Math.floor(n / 250)}.${(n % 250) + 1}`,
  });
  recordSecrets(res.body);
  let parsed: any;
  try {
    parsed = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.statusCode, headers: res.headers, body: parsed, raw: res.body };
}

const auditOk = async (token: string) => (await call(t.app, 'GET', '/v1/audit', { token })).status;

describe('POST /v1/agents/self/rotate-key (spec §7)', () => {
  it('rotates atomically: old key and old secret stop at once, the new pair works, agentId is stable over 3 rotations', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { name: 'Support bot', agentLabel: 'support-bot', selfRotation: true });
    let key = agent.apiKey;
    let secret = agent.rotationSecret!;
    const seen = new Set<string>([key]);
    for (let i = 0; i < 3; i++) {
      const res = await rotate(key, { rotationSecret: secret }, i === 1 ? '/api/v1' : '/v1');
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['agentId', 'agentName', 'apiKey', 'message', 'rotationSecret']);
      expect(res.body.agentId).toBe(agent.id);
      expect(res.body.agentName).toBe('support-bot');
      expect(res.body.apiKey).toMatch(/^sk_test_/);
      expect(res.body.rotationSecret).toMatch(/^rs_/);
      expect(seen.has(res.body.apiKey)).toBe(false);
      seen.add(res.body.apiKey);
      const [oldKey, oldSecret] = [key, secret];
      key = res.body.apiKey;
      secret = res.body.rotationSecret;
      // The old key no longer authenticates anywhere. (With its old secret it retries the rotation
      // until the new key is first used, then it is reuse: self-rotation-fleet.test.ts.)
      expect(await auditOk(oldKey)).toBe(401);
      // The new key with the old secret, and the old key with the new secret: a bad pair.
      for (const [k, s] of [
        [key, oldSecret],
        [oldKey, secret],
      ] as const) {
        const bad = await rotate(k, { rotationSecret: s });
        expect(bad.status).toBe(401);
        expect(bad.body.error).toMatchObject({ code: 'invalid_api_key', message: INVALID });
      }
      expect(await auditOk(key)).toBe(200);
    }
    // The chain of keys: each successor's rotated_from is its predecessor, all the same agent.
    const rows = await queryRows<{ id: string; rotated_from: string | null; agent_id: string; revoked: boolean }>(
      t.database.db,
      sql`select id, rotated_from, agent_id, revoked_at is not null as revoked from api_keys where agent_id = ${agent.id} order by created_at, id`,
    );
    expect(rows).toHaveLength(4);
    expect(rows.filter((r) => !r.revoked)).toHaveLength(1);
    expect(rows.every((r) => r.agent_id === agent.id)).toBe(true);
  });

  it('over the public routes: minted with self_rotation, rotated by the agent, by its service key, by the agent, then revoked', async () => {
    const svc = (method: string, url: string, body?: unknown) =>
      call(t.app, method, url, { token: tenant.serviceKey, body, headers: method === 'POST' ? { 'idempotency-key': crypto.randomUUID() } : {} });
    const minted = await svc('POST', '/v1/keys', { name: 'Field agent', agent_label: 'field-7', self_rotation: true });
    recordSecrets(minted.raw);
    expect(minted.status).toBe(201);
    const agentId = minted.body.key.id;
    const first = await rotate(minted.body.key.plaintext_key, { rotationSecret: minted.body.key.rotation_secret });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ agentId, agentName: 'field-7' });
    // The developer rotates the agent's current key: the successor keeps self-rotation and the agent's secret.
    const current = (await svc('GET', '/v1/keys')).body.keys.find((k: { agent_label: string }) => k.agent_label === 'field-7');
    const byService = await svc('POST', `/v1/keys/${current.id}/rotate`);
    recordSecrets(byService.raw);
    expect(byService.status).toBe(201);
    expect(byService.body.key).not.toHaveProperty('rotation_secret');
    expect((await rotate(first.body.apiKey, { rotationSecret: first.body.rotationSecret })).status).toBe(403);
    const second = await rotate(byService.body.key.plaintext_key, { rotationSecret: first.body.rotationSecret });
    expect(second.status).toBe(200);
    expect(second.body.agentId).toBe(agentId);
    const successor = (await call(t.app, 'GET', '/v1/audit', { token: second.body.apiKey })).body.api_key_id;
    expect((await svc('DELETE', `/v1/keys/${successor}`)).status).toBe(200);
    const revoked = await rotate(second.body.apiKey, { rotationSecret: second.body.rotationSecret });
    expect(revoked.status).toBe(403);
    expect(errorCode(revoked)).toBe('agent_revoked');
  });

  it('records agent_key_self_rotated, visible on both keys’ feeds', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { name: 'named only', selfRotation: true });
    const res = await rotate(agent.apiKey, { rotationSecret: agent.rotationSecret });
    expect(res.status).toBe(200);
    expect(res.body.agentName).toBe('named only');
    const feed = await call(t.app, 'GET', '/v1/audit', { token: res.body.apiKey });
    const ev = feed.body.events.find((e: any) => e.data.event_type === 'agent_key_self_rotated');
    expect(ev.data).toMatchObject({ actor_kind: 'api_key', actor_key_id: agent.id, subject_key_id: agent.id });
    expect(ev.data.related_key_id).toBe(feed.body.api_key_id);
    const oldFeed = await call(t.app, 'GET', `/v1/audit?api_key_id=${agent.id}`, { token: res.body.apiKey });
    expect(oldFeed.body.events.some((e: any) => e.id === ev.id)).toBe(true);
  });

  it('a wrong secret → 401 invalid_api_key, the same answer as an unknown key', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const wrong = await rotate(agent.apiKey, { rotationSecret: `rs_${'x'.repeat(43)}` });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toMatchObject({ code: 'invalid_api_key', message: INVALID });
    for (const token of [tenant.serviceKey, 'garbage', withLastCharChanged(agent.apiKey)]) {
      const res = await rotate(token, { rotationSecret: agent.rotationSecret });
      expect(res.status).toBe(401);
      expect(res.body.error).toMatchObject({ code: 'invalid_api_key', message: INVALID });
    }
    const none = await rotate(undefined, { rotationSecret: agent.rotationSecret });
    expect(none.status).toBe(401);
    expect(errorCode(none)).toBe('unauthorized');
    // Nothing changed: the right pair still rotates.
    expect((await rotate(agent.apiKey, { rotationSecret: agent.rotationSecret })).status).toBe(200);
  });

  it('a revoked key whose secret matches → 403 agent_revoked; without a secret it is just invalid', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const plain = await mintAgent(t, tenant.serviceKey);
    const db = t.database.db;
    await db.execute(sql`update api_keys set revoked_at = now() where id in (${agent.id}, ${plain.id})`);
    const res = await rotate(agent.apiKey, { rotationSecret: agent.rotationSecret });
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('agent_revoked');
    const bad = await rotate(agent.apiKey, { rotationSecret: `rs_${'y'.repeat(43)}` });
    expect(bad.status).toBe(401);
    const noSecret = await rotate(plain.apiKey, { rotationSecret: `rs_${'y'.repeat(43)}` });
    expect(noSecret.status).toBe(401);
    expect(errorCode(noSecret)).toBe('invalid_api_key');
  });

  it('a key without a rotation secret → 403 rotation_not_configured (child or portal key)', async () => {
    const plain = await mintAgent(t, tenant.serviceKey);
    for (const token of [plain.apiKey, tenant.apiKey]) {
      const res = await rotate(token, { rotationSecret: `rs_${'z'.repeat(43)}` });
      expect(res.status).toBe(403);
      expect(errorCode(res)).toBe('rotation_not_configured');
    }
  });

  it('a missing or malformed rotationSecret → 400 validation_error, and nothing rotates', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    for (const body of [undefined, {}, { rotationSecret: '' }, { rotationSecret: 42 }, { secret: agent.rotationSecret }]) {
      const res = await rotate(agent.apiKey, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(errorCode(res)).toBe('validation_error');
      expect(res.body.error.details[0].field).toBe('rotationSecret');
    }
    // Malformed JSON is the usual 422 (README, Decisions): it is not a missing field.
    const malformed = await rotate(agent.apiKey, undefined, '/v1', '{"rotationSecret":');
    expect(malformed.status).toBe(422);
    expect(errorCode(malformed)).toBe('validation_error');
    expect(await auditOk(agent.apiKey)).toBe(200);
  });

  it('of two concurrent self-rotations with the same pair, one live key remains: the other is agent_revoked, or a retry replacing the first', async () => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const results = await Promise.all([0, 1].map(() => rotate(agent.apiKey, { rotationSecret: agent.rotationSecret })));
    // Both read the key live: one wins, the other is agent_revoked. The second read after the first
    // committed: it is a retry of the first (whose new key is unused) and replaces it.
    const ok = results.filter((r) => r.status === 200);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of results) if (r.status !== 200) expect(errorCode(r)).toBe('agent_revoked');
    const working = await Promise.all(ok.map((r) => auditOk(r.body.apiKey)));
    expect(working.filter((s) => s === 200)).toHaveLength(1);
    const live = await queryRows<{ id: string }>(t.database.db, sql`select id from api_keys where agent_id = ${agent.id} and revoked_at is null`);
    expect(live).toHaveLength(1);
  });

  it('the internal API revoking the agent key also ends self-rotation', async () => {
    const res = await call(t.admin, 'DELETE', `/internal/v1/api-keys/${tenant.apiKeyId}`, { token: ADMIN_TOKEN });
    expect(res.status).toBe(200);
    const after = await rotate(tenant.apiKey, { rotationSecret: `rs_${'z'.repeat(43)}` });
    expect(after.status).toBe(401);
  });
});

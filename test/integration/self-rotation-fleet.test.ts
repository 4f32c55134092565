import { and, asc, eq } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, complianceEvents } from '../../src/db/schema.js';
import { ADMIN_TOKEN, call, createTenant, errorCode, recordSecrets, type Tenant, type TestApp } from '../support/harness.js';
import { appTest } from '../support/fixtures.js';

/*
 * Self-rotation for fleets (issue 28): the agent's secret survives its developer's rotation,
 * self-rotation can be turned on and off, a lost answer is retried safely, and a copied pair is
 * detected. Each agent rotates from its own address (TEST-NET-3) and the agent budget is raised:
 * the limits have their own tests (self-rotation-limit.test.ts).
 */
const it = appTest({ rateLimit: { limits: { 'agents.self_rotate': { max: 1000, windowSeconds: 900 } } } });

let nextAddress = 0;
async function selfRotate(t: TestApp, apiKey: string, rotationSecret: string) {
  const n = nextAddress++;
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/agents/self/rotate-key',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ rotationSecret }),
    remoteAddress: `203.0.${113 - Math.floor(n / 250)}.${(n % 250) + 1}`,
  });
  recordSecrets(res.body);
  return { status: res.statusCode, body: JSON.parse(res.body), headers: res.headers };
}

const svc = async (t: TestApp, tenant: Tenant, method: string, url: string, body?: unknown, idempotencyKey?: string) => {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (method === 'POST') headers['idempotency-key'] = idempotencyKey ?? crypto.randomUUID();
  const res = await call(t.app, method, url, { token: tenant.serviceKey, body, headers });
  recordSecrets(res.raw);
  return res;
};

async function mintSelfRotating(t: TestApp, tenant: Tenant) {
  const minted = await svc(t, tenant, 'POST', '/v1/keys', { name: 'fleet agent', self_rotation: true });
  expect(minted.status).toBe(201);
  return { id: minted.body.key.id as string, apiKey: minted.body.key.plaintext_key as string, rotationSecret: minted.body.key.rotation_secret as string };
}

const eventsOf = (t: TestApp, tenant: Tenant, type: string) =>
  t.database.db
    .select()
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, tenant.accountId), eq(complianceEvents.eventType, type)));

describe('a developer rotation keeps the agent’s rotation secret', () => {
  it('rotated the way the Python SDK does (body-less POST under /api/v1, rotation_secret dropped), the agent self-rotates with its old secret: 200', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    // The SDK posts no body with Content-Type: application/json, and its Key object keeps only known fields.
    const rotated = await t.app.inject({
      method: 'POST',
      url: `/api/v1/keys/${agent.id}/rotate`,
      headers: { authorization: `Bearer ${tenant.serviceKey}`, 'content-type': 'application/json', 'idempotency-key': `sdk-${agent.id}` },
    });
    recordSecrets(rotated.body);
    expect(rotated.statusCode).toBe(201);
    const key = JSON.parse(rotated.body).key;
    expect(key).not.toHaveProperty('rotation_secret');
    const res = await selfRotate(t, key.plaintext_key, agent.rotationSecret);
    expect(res.status).toBe(200);
    expect(res.body.agentId).toBe(agent.id);
    const ev = (await eventsOf(t, tenant, 'agent_key_rotated')).find((e) => e.subjectKeyId === agent.id)!;
    expect(ev.data).toMatchObject({ rotation_secret: 'kept' });
  });

  it('?rotation_secret=reset issues a new secret on the first 201 only; the old secret stops working', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const idem = `reset-${agent.id}`;
    const first = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotate?rotation_secret=reset`, undefined, idem);
    expect(first.status).toBe(201);
    expect(first.body.key.rotation_secret).toMatch(/^rs_/);
    expect(first.body.key.rotation_secret).not.toBe(agent.rotationSecret);
    const replay = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotate?rotation_secret=reset`, undefined, idem);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.key).not.toHaveProperty('rotation_secret');
    expect(replay.body.key).not.toHaveProperty('plaintext_key');
    // The same Idempotency-Key without the reset is another request.
    const other = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotate`, undefined, idem);
    expect(other.status).toBe(409);
    expect(errorCode(other)).toBe('idempotency_key_reused');
    expect((await selfRotate(t, first.body.key.plaintext_key, agent.rotationSecret)).status).toBe(401);
    expect((await selfRotate(t, first.body.key.plaintext_key, first.body.key.rotation_secret)).status).toBe(200);
    const ev = (await eventsOf(t, tenant, 'agent_key_rotated')).find((e) => e.subjectKeyId === agent.id)!;
    expect(ev.data).toMatchObject({ rotation_secret: 'reset' });
  });

  it('?rotation_secret=reset on a key without self-rotation is 422 naming the rotation-secret route; other values are 422; nothing rotates', async ({ app: t, tenant }) => {
    const plain = await svc(t, tenant, 'POST', '/v1/keys', { name: 'no self-rotation' });
    const res = await svc(t, tenant, 'POST', `/v1/keys/${plain.body.key.id}/rotate?rotation_secret=reset`);
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
    expect(res.body.error.message).toContain('/rotation-secret');
    const agent = await mintSelfRotating(t, tenant);
    const odd = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotate?rotation_secret=new`);
    expect(odd.status).toBe(422);
    expect((await svc(t, tenant, 'GET', `/v1/keys/${plain.body.key.id}`)).body.key.revoked_at).toBeNull();
    expect((await svc(t, tenant, 'GET', `/v1/keys/${agent.id}`)).body.key.revoked_at).toBeNull();
    // A plain key's rotation event says nothing of a secret it never had.
    await svc(t, tenant, 'POST', `/v1/keys/${plain.body.key.id}/rotate`);
    const ev = (await eventsOf(t, tenant, 'agent_key_rotated')).find((e) => e.subjectKeyId === plain.body.key.id)!;
    expect(ev.data).not.toHaveProperty('rotation_secret');
  });
});

describe('turning self-rotation on and off', () => {
  it('POST /v1/keys/{id}/rotation-secret turns it on: 201 {key, rotation_secret}, the replay without the secret, the event; the token is unchanged', async ({ app: t, tenant }) => {
    const minted = await svc(t, tenant, 'POST', '/v1/keys', { name: 'turned on later' });
    const { id, plaintext_key: apiKey } = minted.body.key;
    expect((await selfRotate(t, apiKey, `rs_${'q'.repeat(43)}`)).status).toBe(403);
    const idem = `secret-${id}`;
    const issued = await svc(t, tenant, 'POST', `/v1/keys/${id}/rotation-secret`, undefined, idem);
    expect(issued.status).toBe(201);
    expect(Object.keys(issued.body).sort()).toEqual(['key', 'rotation_secret']);
    expect(issued.body.rotation_secret).toMatch(/^rs_[0-9A-Za-z]{43}$/);
    expect(issued.body.key).toMatchObject({ id, revoked_at: null });
    expect(issued.body.key).not.toHaveProperty('plaintext_key');
    const replay = await svc(t, tenant, 'POST', `/v1/keys/${id}/rotation-secret`, undefined, idem);
    expect(replay.status).toBe(201);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body).toEqual({ key: issued.body.key });
    const ev = (await eventsOf(t, tenant, 'agent_rotation_secret_issued')).filter((e) => e.subjectKeyId === id);
    expect(ev).toHaveLength(1);
    // The key keeps its token; the agent now rotates itself with the secret.
    const rotated = await selfRotate(t, apiKey, issued.body.rotation_secret);
    expect(rotated.status).toBe(200);
    expect(rotated.body.agentId).toBe(id);
  });

  it('issuing again replaces the secret; it needs an Idempotency-Key; a revoked or foreign key is 404', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const issued = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotation-secret`);
    expect(issued.status).toBe(201);
    expect((await selfRotate(t, agent.apiKey, agent.rotationSecret)).status).toBe(401);
    const noKey = await call(t.app, 'POST', `/v1/keys/${agent.id}/rotation-secret`, { token: tenant.serviceKey });
    expect(noKey.status).toBe(400);
    expect(errorCode(noKey)).toBe('missing_idempotency_key');
    const revoked = await svc(t, tenant, 'POST', '/v1/keys', { name: 'gone' });
    await svc(t, tenant, 'DELETE', `/v1/keys/${revoked.body.key.id}`);
    expect((await svc(t, tenant, 'POST', `/v1/keys/${revoked.body.key.id}/rotation-secret`)).status).toBe(404);
    expect((await svc(t, tenant, 'POST', '/v1/keys/00000000-0000-4000-8000-000000000000/rotation-secret')).status).toBe(404);
  });

  it('PATCH self_rotation false clears the secret (self-rotation answers rotation_not_configured); true is 422 naming the route', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const on = await svc(t, tenant, 'PATCH', `/v1/keys/${agent.id}`, { self_rotation: true });
    expect(on.status).toBe(422);
    expect(errorCode(on)).toBe('validation_error');
    expect(on.body.error.message).toContain('/rotation-secret');
    expect(on.body.error.details[0].field).toBe('self_rotation');
    const off = await svc(t, tenant, 'PATCH', `/v1/keys/${agent.id}`, { self_rotation: false });
    expect(off.status).toBe(200);
    expect(off.raw).not.toMatch(/rs_/);
    const refused = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('rotation_not_configured');
    const ev = (await eventsOf(t, tenant, 'agent_key_updated')).find((e) => e.subjectKeyId === agent.id)!;
    expect(ev.data).toMatchObject({ changed_fields: ['self_rotation'] });
    // Turned on again, the old secret stays dead: only the new one works.
    const again = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotation-secret`);
    expect((await selfRotate(t, agent.apiKey, agent.rotationSecret)).status).toBe(401);
    expect((await selfRotate(t, agent.apiKey, again.body.rotation_secret)).status).toBe(200);
  });
});

/** The chain's keys (any state), oldest first. */
const chainOf = (t: TestApp, agentId: string) =>
  t.database.db.select().from(apiKeys).where(eq(apiKeys.agentId, agentId)).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));

const auditStatus = async (t: TestApp, apiKey: string) => (await call(t.app, 'GET', '/v1/audit', { token: apiKey })).status;

describe('a lost answer is retried safely', () => {
  it('self-rotate, discard the answer, retry with the old pair: 200 with a new pair; the discarded pair is invalid; one live key', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const lost = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(lost.status).toBe(200);
    const retry = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(retry.status).toBe(200);
    expect(retry.body.agentId).toBe(agent.id);
    expect(retry.body.apiKey).not.toBe(lost.body.apiKey);
    expect(retry.body.rotationSecret).not.toBe(lost.body.rotationSecret);
    // The discarded pair: its key authenticates nowhere, and its pair rotates nothing.
    expect(await auditStatus(t, lost.body.apiKey)).toBe(401);
    expect((await selfRotate(t, lost.body.apiKey, lost.body.rotationSecret)).status).toBe(403);
    // A second lost answer is retried the same way.
    const again = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(again.status).toBe(200);
    expect(await auditStatus(t, again.body.apiKey)).toBe(200);
    expect(await auditStatus(t, retry.body.apiKey)).toBe(401);
    const chain = await chainOf(t, agent.id);
    expect(chain.filter((k) => k.revokedAt === null).map((k) => k.id)).toHaveLength(1);
    const replaced = await eventsOf(t, tenant, 'agent_key_self_rotation_replaced');
    expect(replaced.filter((e) => e.actorKeyId === agent.id)).toHaveLength(2);
    // The agent goes on from the last pair; its old pair is now reuse (the new key was used above).
    expect((await selfRotate(t, again.body.apiKey, again.body.rotationSecret)).status).toBe(200);
  });

  it('verify counts as a use: after it, the old pair is no retry', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const next = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    const verified = await call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key: next.body.apiKey, verb: 'call' } });
    expect(verified.body.valid).toBe(true);
    const stale = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(stale.status).toBe(403);
    expect(stale.body.error.code).toBe('agent_revoked');
    expect(await auditStatus(t, next.body.apiKey)).toBe(401);
  });

  it('two concurrent retries of one lost rotation leave exactly one live key', async ({ app: t, tenant }) => {
    for (let round = 0; round < 3; round++) {
      const agent = await mintSelfRotating(t, tenant);
      expect((await selfRotate(t, agent.apiKey, agent.rotationSecret)).status).toBe(200);
      const results = await Promise.all([0, 1].map(() => selfRotate(t, agent.apiKey, agent.rotationSecret)));
      const ok = results.filter((r) => r.status === 200);
      expect(ok.length).toBeGreaterThanOrEqual(1);
      for (const r of results) if (r.status !== 200) expect(r.body.error.code).toBe('agent_revoked');
      const live = (await chainOf(t, agent.id)).filter((k) => k.revokedAt === null);
      expect(live).toHaveLength(1);
      // The live key is the last 200's.
      const working = await Promise.all(ok.map((r) => auditStatus(t, r.body.apiKey)));
      expect(working.filter((s) => s === 200)).toHaveLength(1);
    }
  });
});

describe('reuse of a copied pair', () => {
  it('self-rotate, use the new key once, present the old pair: 403, the chain’s live key is revoked, the event is in the feed', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const first = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(await auditStatus(t, first.body.apiKey)).toBe(200);
    const second = await selfRotate(t, first.body.apiKey, first.body.rotationSecret);
    expect(await auditStatus(t, second.body.apiKey)).toBe(200);
    const stale = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(stale.status).toBe(403);
    expect(stale.body.error).toMatchObject({ code: 'agent_revoked' });
    expect(await auditStatus(t, second.body.apiKey)).toBe(401);
    expect((await chainOf(t, agent.id)).every((k) => k.revokedAt !== null)).toBe(true);
    const head = (await chainOf(t, agent.id)).at(-1)!;
    // The account's portal key reads the revoked head's feed.
    const feed = await call(t.app, 'GET', `/v1/audit?api_key_id=${head.id}`, { token: tenant.apiKey });
    expect(feed.status).toBe(200);
    const detected = feed.body.events.filter((e: { data: { event_type: string } }) => e.data.event_type === 'agent_key_reuse_detected');
    expect(detected).toHaveLength(1);
    expect(detected[0].data).toMatchObject({
      event_type: 'agent_key_reuse_detected',
      actor_kind: 'api_key',
      actor_key_id: agent.id,
      subject_key_id: head.id,
    });
    expect(detected[0].data.details).toMatchObject({ stale_key_id: agent.id, rotations_back: 2, reaction: 'revoke_chain', revoked: true });
    // Again: nothing live is left to revoke; the answer stays 403 and no second event is written.
    expect((await selfRotate(t, agent.apiKey, agent.rotationSecret)).status).toBe(403);
    expect((await eventsOf(t, tenant, 'agent_key_reuse_detected')).filter((e) => e.subjectKeyId === head.id)).toHaveLength(1);
  });

  it('with the account’s reaction `report` the key stays live and only the event is written', async ({ app: t }) => {
    const tenant = await createTenant(t);
    const set = await call(t.admin, 'PATCH', `/internal/v1/accounts/${tenant.accountId}`, { token: ADMIN_TOKEN, body: { reuse_reaction: 'report' } });
    expect(set.status).toBe(200);
    expect(set.body.account).toMatchObject({ id: tenant.accountId, reuse_reaction: 'report' });
    const agent = await mintSelfRotating(t, tenant);
    const next = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(await auditStatus(t, next.body.apiKey)).toBe(200);
    const stale = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(stale.status).toBe(403);
    expect(stale.body.error.code).toBe('agent_revoked');
    expect(await auditStatus(t, next.body.apiKey)).toBe(200);
    const [ev] = await eventsOf(t, tenant, 'agent_key_reuse_detected');
    expect(ev!.data).toMatchObject({ reaction: 'report', revoked: false, rotations_back: 1 });
    // The agent's own pair still works.
    expect((await selfRotate(t, next.body.apiKey, next.body.rotationSecret)).status).toBe(200);
  });

  it('a key its developer rotated or revoked is no reuse: 403, the chain untouched, no event', async ({ app: t, tenant }) => {
    const agent = await mintSelfRotating(t, tenant);
    const rotated = await svc(t, tenant, 'POST', `/v1/keys/${agent.id}/rotate`);
    expect(await auditStatus(t, rotated.body.key.plaintext_key)).toBe(200);
    const stale = await selfRotate(t, agent.apiKey, agent.rotationSecret);
    expect(stale.status).toBe(403);
    expect(await auditStatus(t, rotated.body.key.plaintext_key)).toBe(200);
    expect((await eventsOf(t, tenant, 'agent_key_reuse_detected')).filter((e) => e.actorKeyId === agent.id)).toHaveLength(0);
  });
});

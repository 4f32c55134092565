import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { and, eq, sql } from 'drizzle-orm';
import { describe, expect } from 'vitest';
import { apiKeys, complianceEvents, idempotencyKeys } from '../../src/db/schema.js';
import { newId } from '../../src/domain/ids.js';
import { requestFingerprint } from '../../src/domain/idempotency/fingerprint.js';
import { IDEMPOTENCY_TTL_MS, LOCK_TIMEOUT_MS, sweepIdempotencyKeys } from '../../src/domain/idempotency/idempotency.service.js';
import { call, createTenant, errorCode, type Tenant, type TestApp } from '../support/harness.js';
import { it } from '../support/fixtures.js';

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const uniq = () => `idem-${Math.random().toString(36).slice(2)}`;
const mint = (body: unknown, idem: string | undefined, token = tenant.serviceKey, headers: Record<string, string> = {}) =>
  call(t.app, 'POST', '/v1/keys', { token, body, headers: idem === undefined ? headers : { 'idempotency-key': idem, ...headers } });

async function countCreated(accountId: string) {
  const rows = await t.database.db
    .select({ id: complianceEvents.id })
    .from(complianceEvents)
    .where(and(eq(complianceEvents.accountId, accountId), eq(complianceEvents.eventType, 'agent_key_created')));
  return rows.length;
}

describe('Idempotency-Key header (spec §5)', () => {
  it('missing → 400 missing_idempotency_key, on mint and rotate', async () => {
    const res = await mint({ name: 'a' }, undefined);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('missing_idempotency_key');
    const key = (await mint({ name: 'r' }, uniq())).body.key;
    const rot = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey });
    expect(rot.status).toBe(400);
    expect(errorCode(rot)).toBe('missing_idempotency_key');
  });

  it('sent twice → 400 duplicate_idempotency_key_header', async () => {
    // Over a real connection, as `curl -H 'Idempotency-Key: a1' -H 'Idempotency-Key: a2'` sends it:
    // two header lines, which the server sees as two raw headers (Node joins them in req.headers).
    await t.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = t.app.server.address() as AddressInfo;
    const body = JSON.stringify({ name: 'dup' });
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/keys',
          // A flat list, as message.rawHeaders: the same name twice stays two header lines. Node adds
          // neither Host nor the body's framing to a list, so they are given here.
          headers: [
            'host', `127.0.0.1:${port}`,
            'authorization', `Bearer ${tenant.serviceKey}`,
            'content-type', 'application/json',
            'content-length', String(Buffer.byteLength(body)),
            'idempotency-key', 'a1',
            'idempotency-key', 'a2',
          ],
        },
        (r) => {
          let body = '';
          r.setEncoding('utf8');
          r.on('data', (chunk: string) => (body += chunk));
          r.on('end', () => resolve({ status: r.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.code).toBe('duplicate_idempotency_key_header');
  });

  it.each([
    ['empty', ''],
    ['over 255 characters', 'k'.repeat(256)],
    ['inner whitespace', 'a b'],
    ['tab', 'a\tb'],
  ])('%s → 422 validation_error', async (_n, value) => {
    const res = await mint({ name: 'a' }, value);
    expect(res.status).toBe(422);
    expect(errorCode(res)).toBe('validation_error');
  });

  it('255 characters is fine', async () => {
    expect((await mint({ name: 'a' }, 'k'.repeat(254) + Math.floor(Math.random() * 10))).status).toBe(201);
  });
});

describe('replay', () => {
  it('replays status and body without plaintext_key or rotation_secret, with Idempotent-Replayed, no second effect', async () => {
    const own = await createTenant(t);
    const idem = uniq();
    const first = await mint({ name: 'once', self_rotation: true }, idem, own.serviceKey);
    expect(first.status).toBe(201);
    expect(first.body.key.plaintext_key).toBeDefined();
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    for (const path of ['/v1/keys', '/api/v1/keys']) {
      const again = await call(t.app, 'POST', path, { token: own.serviceKey, body: { self_rotation: true, name: 'once' }, headers: { 'idempotency-key': idem } });
      expect(again.status).toBe(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      const { plaintext_key: _p, rotation_secret: _r, ...rest } = first.body.key;
      expect(again.body).toEqual({ key: rest });
    }
    expect(await countCreated(own.accountId)).toBe(1);
    const rows = await t.database.db.select().from(apiKeys).where(eq(apiKeys.createdByServiceKeyId, own.serviceKeyId));
    expect(rows).toHaveLength(1);
  });

  it('the stored response holds no secret', async () => {
    const idem = uniq();
    const first = await mint({ name: 'stored', self_rotation: true }, idem);
    const [row] = await t.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.idempotencyKey, idem));
    const stored = JSON.stringify(row!.responseBody);
    expect(stored).not.toContain(first.body.key.plaintext_key);
    expect(stored).not.toContain(first.body.key.rotation_secret);
    expect(stored).not.toMatch(/plaintext_key|rotation_secret/);
  });

  it('a rotation replays too (even though the old key is now revoked)', async () => {
    const key = (await mint({ name: 'rr' }, uniq())).body.key;
    const idem = uniq();
    const first = await call(t.app, 'POST', `/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': idem } });
    expect(first.status).toBe(201);
    const again = await call(t.app, 'POST', `/api/v1/keys/${key.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': idem } });
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.key.id).toBe(first.body.key.id);
    expect(again.body.key.plaintext_key).toBeUndefined();
  });

  it('same key, different body → 409 idempotency_key_reused; rotation of another key too', async () => {
    const idem = uniq();
    await mint({ name: 'one' }, idem);
    const reused = await mint({ name: 'two' }, idem);
    expect(reused.status).toBe(409);
    expect(errorCode(reused)).toBe('idempotency_key_reused');
    const a = (await mint({ name: 'a' }, uniq())).body.key;
    const b = (await mint({ name: 'b' }, uniq())).body.key;
    const rid = uniq();
    expect((await call(t.app, 'POST', `/v1/keys/${a.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': rid } })).status).toBe(201);
    const other = await call(t.app, 'POST', `/v1/keys/${b.id}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': rid } });
    expect(other.status).toBe(409);
    expect(errorCode(other)).toBe('idempotency_key_reused');
  });

  it('the scope is per service key: another service key may use the same Idempotency-Key', async () => {
    const idem = uniq();
    const other = await createTenant(t);
    expect((await mint({ name: 'x' }, idem)).status).toBe(201);
    const theirs = await mint({ name: 'x' }, idem, other.serviceKey);
    expect(theirs.status).toBe(201);
    expect(theirs.headers['idempotent-replayed']).toBeUndefined();
  });

  it('validation errors are not stored: fix the body and retry with the same key', async () => {
    const idem = uniq();
    expect((await mint({ name: '' }, idem)).status).toBe(422);
    expect((await mint({ name: 'ok', environment: 'live' }, idem)).status).toBe(422);
    const fixed = await mint({ name: 'ok' }, idem);
    expect(fixed.status).toBe(201);
    expect(fixed.body.key.plaintext_key).toBeDefined();
  });

  it('a 404 rotation is not stored either', async () => {
    const idem = uniq();
    const missing = '00000000-0000-4000-8000-000000000000';
    expect((await call(t.app, 'POST', `/v1/keys/${missing}/rotate`, { token: tenant.serviceKey, headers: { 'idempotency-key': idem } })).status).toBe(404);
    const [row] = await t.database.db.select().from(idempotencyKeys).where(eq(idempotencyKeys.idempotencyKey, idem));
    expect(row).toBeUndefined();
  });
});

describe('in progress, lock timeout, expiry', () => {
  async function plantClaim(idem: string, body: unknown, lockedAt: Date, createdAt = lockedAt) {
    await t.database.db.insert(idempotencyKeys).values({
      id: newId(),
      accountId: tenant.accountId,
      serviceKeyId: tenant.serviceKeyId,
      idempotencyKey: idem,
      // The fingerprint covers the validated body, defaults included.
      fingerprint: requestFingerprint('POST', '/v1/keys', { permissions: 'full', self_rotation: false, ...(body as object) }),
      createdAt,
      lockedAt,
    });
  }

  it('while the first request runs → 409 idempotency_in_progress with Retry-After: 1', async () => {
    const idem = uniq();
    await plantClaim(idem, { name: 'busy' }, t.clock.now());
    const res = await mint({ name: 'busy' }, idem);
    expect(res.status).toBe(409);
    expect(errorCode(res)).toBe('idempotency_in_progress');
    expect(res.headers['retry-after']).toBe('1');
  });

  it('a request that died mid-way does not lock its key forever: after the lock timeout it is taken over', async () => {
    const idem = uniq();
    await plantClaim(idem, { name: 'dead' }, new Date(t.clock.now().getTime() - LOCK_TIMEOUT_MS - 1000));
    const res = await mint({ name: 'dead' }, idem);
    expect(res.status).toBe(201);
    expect(res.body.key.plaintext_key).toBeDefined();
    expect((await mint({ name: 'dead' }, idem)).headers['idempotent-replayed']).toBe('true');
  });

  it('after 12 hours the same key is a new request (injectable clock)', async () => {
    const own = await createTenant(t);
    const idem = uniq();
    const first = await mint({ name: 'old' }, idem, own.serviceKey);
    t.clock.advance(IDEMPOTENCY_TTL_MS + 60_000);
    const later = await mint({ name: 'different body now' }, idem, own.serviceKey);
    expect(later.status).toBe(201);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(later.body.key.id).not.toBe(first.body.key.id);
    expect(await countCreated(own.accountId)).toBe(2);
  });

  it('the sweeper deletes records past 12 hours and keeps younger ones', async () => {
    const old = uniq();
    const young = uniq();
    const now = t.clock.now();
    await plantClaim(old, { name: 'o' }, new Date(now.getTime() - IDEMPOTENCY_TTL_MS - 1000));
    await plantClaim(young, { name: 'y' }, now);
    const deleted = await sweepIdempotencyKeys(t.database.db, now);
    expect(deleted).toBeGreaterThanOrEqual(1);
    const left = await t.database.db
      .select({ k: idempotencyKeys.idempotencyKey })
      .from(idempotencyKeys)
      .where(sql`${idempotencyKeys.idempotencyKey} in (${old}, ${young})`);
    expect(left.map((r) => r.k)).toEqual([young]);
  });
});

import { describe, expect } from 'vitest';
import { openDatabase } from '../../src/db/database.js';
import { createMetrics } from '../../src/domain/metrics/metrics.js';
import { createServices } from '../../src/services.js';
import type { OperatorScope } from '../../src/domain/operator-tokens/operator-tokens.service.js';
import { mintChild } from '../support/child-keys.js';
import { createFleetDatabase } from '../support/fleet.js';
import { appTest } from '../support/fixtures.js';
import { buildApp } from '../../src/app.js';
import { generateToken } from '../../src/domain/auth/credentials.js';
import { ADMIN_TOKEN, call, createTestApp, errorCode, recordSecrets, testLogger, type Tenant, type TestApp } from '../support/harness.js';
import { delta, parsePrometheus, scrape, series } from '../support/prometheus.js';

/*
 * GET /metrics on the admin listener: scraped and parsed as Prometheus would, its series checked to
 * move with the requests that should move them; who may scrape; and load shedding's 503.
 */

// keys.get at 1 an hour, so the second read of a key is the rate-limit rejection the metrics count.
const it = appTest({ rateLimit: { limits: { 'keys.get': { max: 1, windowSeconds: 3600 } } } });

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

const verify = (body: unknown) => call(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body });

async function operatorToken(scope: OperatorScope): Promise<string> {
  const created = await t.services.operatorTokens.create(
    { name: `metrics-${scope}-${Math.random().toString(36).slice(2)}`, scope },
    { actor: { kind: 'portal', keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: t.clock.now() },
  );
  recordSecrets(created.plaintext_key);
  return created.plaintext_key;
}

describe('GET /metrics', () => {
  it('counts requests by route template and status, verify outcomes, debits, replays and rate-limit rejections', async () => {
    const child = await mintChild(t, tenant, { monthlyCapCents: 1000 });
    const before = await scrape(t.admin);

    expect((await verify({ key: child.plaintext, verb: 'call' })).body.code).toBe('valid');
    expect((await verify({ key: 'sk_test_not-a-key', verb: 'call' })).body.code).toBe('invalid_api_key');
    expect((await verify({ key: child.plaintext, verb: 'call', cost_cents: 5, request_id: `r-${Math.random()}` })).body.valid).toBe(true);
    expect((await call(t.app, 'GET', '/v1/keys')).status).toBe(401);
    const idem = { 'idempotency-key': `m-${Math.random().toString(36).slice(2)}` };
    const first = await call(t.app, 'POST', '/v1/keys', { token: tenant.serviceKey, body: { name: 'metrics' }, headers: idem });
    const replay = await call(t.app, 'POST', '/v1/keys', { token: tenant.serviceKey, body: { name: 'metrics' }, headers: idem });
    expect([first.status, replay.status, replay.headers['idempotent-replayed']]).toEqual([201, 201, 'true']);
    expect((await call(t.app, 'GET', `/v1/keys/${child.id}`, { token: tenant.serviceKey })).status).toBe(200);
    const limited = await call(t.app, 'GET', `/v1/keys/${child.id}`, { token: tenant.serviceKey });
    expect([limited.status, errorCode(limited)]).toEqual([429, 'rate_limited']);

    const after = await scrape(t.admin);
    const moved = (name: string, labels: Record<string, string>) => delta(before, after, series(name, labels));
    const verifyRoute = { listener: 'admin', method: 'POST', route: '/internal/v1/verify' };
    expect(moved('keyplane_http_requests_total', { ...verifyRoute, status: '200' })).toBe(3);
    expect(moved('keyplane_http_request_duration_seconds_count', verifyRoute)).toBe(3);
    expect(moved('keyplane_http_requests_total', { listener: 'public', method: 'GET', route: '/v1/keys', status: '401' })).toBe(1);
    expect(moved('keyplane_http_requests_total', { listener: 'public', method: 'POST', route: '/v1/keys', status: '201' })).toBe(2);
    expect(moved('keyplane_http_requests_total', { listener: 'public', method: 'GET', route: '/v1/keys/:id', status: '429' })).toBe(1);
    expect(moved('keyplane_verify_outcomes_total', { code: 'valid' })).toBe(2);
    expect(moved('keyplane_verify_outcomes_total', { code: 'invalid_api_key' })).toBe(1);
    expect(moved('keyplane_batch_size_count', { statement: 'debit' })).toBe(1);
    expect(moved('keyplane_batch_size_sum', { statement: 'debit' })).toBe(1);
    expect(moved('keyplane_batch_duration_seconds_count', { statement: 'verify_key_read' })).toBe(1);
    expect(moved('keyplane_idempotency_total', { outcome: 'replayed' })).toBe(1);
    expect(moved('keyplane_rate_limit_rejections_total', { policy: 'keys.get' })).toBe(1);
    // The first scrape itself was counted, under its route template.
    expect(moved('keyplane_http_requests_total', { listener: 'admin', method: 'GET', route: '/metrics', status: '200' })).toBe(1);
  });

  it('reads the pools, the linker queue and the rate-limit store at scrape time', async () => {
    const s = await scrape(t.admin);
    expect(s.get('keyplane_audit_events_waiting_link')).toBeGreaterThanOrEqual(0);
    expect(s.get('keyplane_rate_limit_store_fallback')).toBe(0);
    expect(s.get(series('keyplane_database_errors_total', { kind: 'unavailable' }))).toBe(0);
    if (t.database.kind === 'postgres') {
      expect(s.get(series('keyplane_db_pool_connections', { pool: 'main', state: 'total' }))).toBeGreaterThanOrEqual(1);
      expect(s.get(series('keyplane_db_pool_waiting_requests', { pool: 'linker' }))).toBe(0);
    }
  });

  it('is served to a metrics-scoped or admin token; a verify-scoped token is refused 403, none 401', async () => {
    const metricsToken = await operatorToken('metrics');
    await scrape(t.admin, metricsToken);
    const outside = await call(t.admin, 'POST', '/internal/v1/verify', { token: metricsToken, body: { key: 'x', verb: 'call' } });
    expect([outside.status, errorCode(outside)]).toEqual([403, 'insufficient_scope']);
    const accounts = await call(t.admin, 'POST', '/internal/v1/accounts', { token: metricsToken, body: { name: 'no' } });
    expect([accounts.status, errorCode(accounts)]).toEqual([403, 'insufficient_scope']);

    const refused = await call(t.admin, 'GET', '/metrics', { token: await operatorToken('verify') });
    expect([refused.status, errorCode(refused)]).toEqual([403, 'insufficient_scope']);
    const anonymous = await call(t.admin, 'GET', '/metrics');
    expect([anonymous.status, errorCode(anonymous)]).toEqual([401, 'unauthorized']);
    expect((await call(t.app, 'GET', '/metrics', { token: ADMIN_TOKEN })).status).toBe(404);
  });
});

describe('pool metrics (server mode)', () => {
  // On a database of its own on the Postgres server in either mode, as sql-sources.test.ts does: pools are server mode's.
  it('times every checkout and reads the pools at scrape time; a scrape survives a failing gauge query', async () => {
    const fresh = await createFleetDatabase('poolmetrics');
    const metrics = createMetrics();
    const database = await openDatabase({ databaseUrl: fresh.url, poolMax: 2, onPoolWait: metrics.poolWait });
    try {
      const services = createServices(database, { metrics });
      // Four pings on a pool of two: two of them queue for a connection.
      await Promise.all([1, 2, 3, 4].map(() => services.health.ping()));
      // Unmigrated, so the count of unlinked events fails: that gauge is NaN (unknown), the scrape answers.
      const s = parsePrometheus(await metrics.registry.metrics());
      expect(s.get(series('keyplane_db_pool_wait_seconds_count', { pool: 'main' }))).toBe(4);
      expect(s.get(series('keyplane_db_pool_wait_seconds_count', { pool: 'linker' }))).toBe(0);
      expect(s.get(series('keyplane_db_pool_connections', { pool: 'main', state: 'total' }))).toBe(2);
      expect(s.get(series('keyplane_db_pool_connections', { pool: 'linker', state: 'total' }))).toBe(0);
      expect(s.get(series('keyplane_db_pool_waiting_requests', { pool: 'main' }))).toBe(0);
      expect(s.get('keyplane_audit_events_waiting_link')).toBeNaN();
    } finally {
      await database.close();
      await fresh.drop();
    }
  });
});

describe('outages', () => {
  it('counts a request failed by an unreachable database, and rate limits counted per instance while Redis is down', async () => {
    const metrics = createMetrics();
    // Nothing listens on port 1: the database and Redis are both down from the start.
    const database = await openDatabase({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMs: 500 });
    const services = createServices(database, { metrics });
    const redis = { url: 'redis://127.0.0.1:1', keyPrefix: 'keyplane:metrics-test:', connectTimeoutMs: 200, commandTimeoutMs: 100 };
    const app = await buildApp({ services, logger: testLogger(), rateLimit: { redis } });
    try {
      const res = await call(app, 'GET', '/v1/keys', { token: generateToken('service', 'test').plaintext });
      expect([res.status, errorCode(res)]).toEqual([503, 'service_unavailable']);
      const s = parsePrometheus(await metrics.registry.metrics());
      expect(s.get(series('keyplane_database_errors_total', { kind: 'unavailable' }))).toBe(1);
      expect(s.get('keyplane_rate_limit_store_fallback')).toBe(1);
      expect(s.get(series('keyplane_http_requests_total', { listener: 'public', method: 'GET', route: '/v1/keys', status: '503' }))).toBe(1);
    } finally {
      await app.close();
      await database.close();
    }
  });
});

describe('load shedding', () => {
  it('answers 503 service_unavailable in the envelope while the event loop lags; liveness and /metrics still answer', async () => {
    const shed = await createTestApp({ loadShed: { maxEventLoopDelayMs: 20, sampleIntervalMs: 15 } });
    try {
      const app = shed.app as unknown as { isUnderPressure(): boolean };
      // Block the loop until a sample has seen it blocked (under-pressure measures the mean delay).
      for (let i = 0; i < 50 && !app.isUnderPressure(); i++) {
        const until = Date.now() + 150;
        while (Date.now() < until);
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      expect(app.isUnderPressure()).toBe(true);
      const res = await call(shed.app, 'GET', '/v1/keys', { token: 'sk_test_whatever' });
      expect([res.status, errorCode(res), res.headers['retry-after']]).toEqual([503, 'service_unavailable', '1']);
      expect((await call(shed.app, 'GET', '/healthz')).status).toBe(200);
      const s = await scrape(shed.admin);
      expect(s.get(series('keyplane_load_shed_total', { listener: 'public' }))).toBe(1);
    } finally {
      await shed.close();
    }
  });
});

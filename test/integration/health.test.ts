import { describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createServices } from '../../src/services.js';
import { openDatabase } from '../../src/db/database.js';
import { call, createTestApp, testLogger } from '../support/harness.js';

describe('health probes', () => {
  it('/healthz and /readyz answer 200 while the database answers', async () => {
    const t = await createTestApp();
    expect((await call(t.app, 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const ready = await call(t.app, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body.status).toBe('ready');
    await t.close();
  }, 120_000);

  it('/readyz answers 503 service_unavailable with Retry-After when the database is gone', async () => {
    // A pool pointed at a closed port: the probe must fail fast, not hang.
    const database = await openDatabase({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMs: 500 });
    const app = await buildApp({ services: createServices(database), logger: testLogger() });
    const started = Date.now();
    const res = await call(app, 'GET', '/readyz');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(res.body.error.code).toBe('service_unavailable');
    expect((await call(app, 'GET', '/healthz')).status).toBe(200);
    await app.close();
    await database.close();
  });

  it('an authenticated request while the database is down → 503, not 500', async () => {
    const database = await openDatabase({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', connectionTimeoutMs: 500 });
    const app = await buildApp({ services: createServices(database), logger: testLogger() });
    const { generateToken } = await import('../../src/domain/auth/credentials.js');
    const res = await call(app, 'GET', '/v1/keys', { token: generateToken('service', 'test').plaintext });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('service_unavailable');
    expect(res.headers['retry-after']).toBeDefined();
    await app.close();
    await database.close();
  });
});

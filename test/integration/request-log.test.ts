import { appendFileSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, inject } from 'vitest';
import { SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';
import { loggerOptions } from '../../src/http/plugins/logger.js';
import { mintChild } from '../support/child-keys.js';
import { appTest } from '../support/fixtures.js';
import { ADMIN_TOKEN, call, type Tenant, type TestApp } from '../support/harness.js';

/*
 * The completion line (src/http/plugins/request-log.ts): one per request, with the route template,
 * status, principal (kind and key prefix, never the secret) and error code; string levels; the
 * health probes and valid verifies at debug, refusals at info.
 */

type Line = Record<string, any>;
const lines: Line[] = [];
const logFile = path.join(inject('runDir'), 'logs', `${process.pid}-request-log.log`);
const logger = pino(loggerOptions('debug', [ADMIN_TOKEN]), {
  write(line: string) {
    lines.push(JSON.parse(line));
    // Also where the run's leak check greps every log line for issued secrets.
    appendFileSync(logFile, line);
  },
});
const it = appTest({ logger });

let t: TestApp;
let tenant: Tenant;
it.beforeAll(({ app, tenant: tn }) => {
  t = app;
  tenant = tn;
});

/** The lines one request wrote, by its X-Request-Id. */
async function linesOf(app: TestApp['app'], method: string, url: string, opts: Parameters<typeof call>[3] = {}) {
  const res = await call(app, method, url, opts);
  const id = res.headers['x-request-id'];
  return { res, lines: lines.filter((l) => l.reqId === id) };
}

describe('the request completion line', () => {
  it('is the one line of a request, at a string level, with route template, status, principal and time', async () => {
    const child = await mintChild(t, tenant);
    const { res, lines: mine } = await linesOf(t.app, 'GET', `/v1/keys/${child.id}`, { token: tenant.serviceKey });
    expect(res.status).toBe(200);
    expect(mine).toHaveLength(1);
    const line = mine[0]!;
    expect(line).toMatchObject({ level: 'info', msg: 'request completed', route: '/v1/keys/:id', status: 200, req: { method: 'GET', url: `/v1/keys/${child.id}` } });
    expect(line.principal).toEqual({ kind: 'service_key', key_prefix: expect.any(String) });
    expect(tenant.serviceKey.startsWith(line.principal.key_prefix)).toBe(true);
    expect(line.code).toBeUndefined();
    expect(line.ms).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(line)).not.toMatch(SECRET_PATTERN);
  });

  it('carries the error code of a failure, at info', async () => {
    const { lines: anonymous } = await linesOf(t.app, 'GET', '/v1/keys');
    expect(anonymous).toEqual([expect.objectContaining({ level: 'info', route: '/v1/keys', status: 401, code: 'unauthorized' })]);
    expect(anonymous[0]!.principal).toBeUndefined();
    const { lines: unknown } = await linesOf(t.app, 'GET', '/v1/nothing-here');
    expect(unknown).toEqual([expect.objectContaining({ level: 'info', route: '(unmatched)', status: 404, code: 'not_found' })]);
  });

  it('logs health probes and valid verifies at debug, a refused verify at info with its code, the operator by name', async () => {
    const { lines: probe } = await linesOf(t.app, 'GET', '/healthz');
    expect(probe).toEqual([expect.objectContaining({ level: 'debug', route: '/healthz', status: 200 })]);
    const { lines: ready } = await linesOf(t.admin, 'GET', '/readyz');
    expect(ready).toEqual([expect.objectContaining({ level: 'debug', route: '/readyz', status: 200 })]);

    const child = await mintChild(t, tenant);
    const verify = (key: string) => linesOf(t.admin, 'POST', '/internal/v1/verify', { token: ADMIN_TOKEN, body: { key, verb: 'call' } });
    const valid = await verify(child.plaintext);
    expect(valid.res.body.valid).toBe(true);
    expect(valid.lines).toEqual([expect.objectContaining({ level: 'debug', route: '/internal/v1/verify', status: 200, principal: { kind: 'operator', name: 'bootstrap' } })]);
    const refused = await verify('sk_test_not-a-key');
    expect(refused.res.body.valid).toBe(false);
    expect(refused.lines).toEqual([expect.objectContaining({ level: 'info', status: 200, code: 'invalid_api_key' })]);
  });
});

import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { describe, expect, inject } from 'vitest';
import { queryRows } from '../../src/db/statements.js';
import { SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';
import { loggerOptions } from '../../src/http/plugins/logger.js';
import { mintAgent } from '../support/agents.js';
import { appTest } from '../support/fixtures.js';
import { ADMIN_TOKEN, call, type CallResult, type TestApp } from '../support/harness.js';

/*
 * A careless client's secret in the URL (path or query string), in X-Request-Id or in User-Agent
 * never reaches a log line, a response header or the compliance log (where the account's other
 * keys read it back through the feed). The secrets are real ones the tenant was issued.
 */

// Every line the apps log, kept here and also written where the run's leak check reads logs.
const lines: string[] = [];
const logFile = path.join(inject('runDir'), 'logs', `${process.pid}-scrub.log`);
const logger = pino(loggerOptions('info', [ADMIN_TOKEN]), {
  write(line: string) {
    lines.push(line);
    appendFileSync(logFile, line);
  },
});
const it = appTest({ logger });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function expectClean(res: CallResult, secrets: string[]) {
  const headers = JSON.stringify(res.headers);
  for (const s of secrets) expect(headers).not.toContain(s);
  expect(headers).not.toMatch(SECRET_PATTERN);
}

async function storedMeta(t: TestApp, accountId: string) {
  return queryRows<{ event_type: string; request_id: string | null; user_agent: string | null }>(
    t.database.db,
    sql`select event_type, request_id, user_agent from compliance_events where account_id = ${accountId}`,
  );
}

describe('secrets in the URL, X-Request-Id and User-Agent', () => {
  it('public routes: nothing secret is logged, echoed or stored, and the child reads a clean feed', async ({ app: t, tenant }) => {
    const agent = await mintAgent(t, tenant.serviceKey, { selfRotation: true });
    const rotationSecret = agent.rotationSecret!;
    const secrets = [tenant.apiKey, rotationSecret, agent.apiKey];
    const careless = { 'x-request-id': tenant.apiKey, 'user-agent': `careless-sdk/1.0 (token=${rotationSecret})` };
    lines.length = 0;

    const results = [
      // the query string and the path, on routes that answer 422 and 404
      await call(t.app, 'GET', `/v1/keys?limit=5&api_key=${tenant.apiKey}`, { token: tenant.serviceKey }),
      await call(t.app, 'GET', `/api/v1/keys/${rotationSecret}`, { token: tenant.serviceKey }),
      await call(t.app, 'GET', `/v1/nowhere/${tenant.apiKey}`),
      await call(t.app, 'GET', `/v1/audit?before=${agent.apiKey.replace(/_/g, '%5F')}`, { token: agent.apiKey }),
      // the headers, on routes that record a compliance event
      await call(t.app, 'GET', '/v1/keys', { token: tenant.serviceKey, headers: careless }),
      await call(t.app, 'POST', '/v1/keys', {
        token: tenant.serviceKey,
        body: { name: 'careless' },
        headers: { ...careless, 'idempotency-key': `scrub-${Math.random()}` },
      }),
    ];
    for (const res of results) expectClean(res, secrets);
    expect(results.map((r) => r.status)).toEqual([422, 404, 404, 422, 200, 201]);
    // A secret-shaped X-Request-Id is replaced by a generated one, and the new one is echoed.
    expect(results[4]!.headers['x-request-id']).toMatch(UUID);
    // A well-formed, harmless one is still honoured.
    expect((await call(t.app, 'GET', '/healthz', { headers: { 'x-request-id': 'trace-42' } })).headers['x-request-id']).toBe('trace-42');

    const logged = lines.join('');
    for (const s of secrets) expect(logged).not.toContain(s);
    expect(logged).not.toMatch(SECRET_PATTERN);
    // The URLs are still logged, with only the kind of secret left.
    const urls = lines.map((l) => JSON.parse(l) as { req?: { url: string } }).flatMap((l) => (l.req ? [l.req.url] : []));
    expect(urls).toContain('/v1/keys?limit=5&api_key=[redacted:sk_test_]');
    expect(urls).toContain('/api/v1/keys/[redacted:rs_]');
    expect(urls).toContain('/v1/audit?before=[redacted:sk_test_]');

    const stored = await storedMeta(t, tenant.accountId);
    const careful = stored.filter((e) => e.user_agent?.startsWith('careless-sdk'));
    expect(careful.map((e) => e.event_type).sort()).toEqual(['agent_key_created', 'service_key_list_read']);
    for (const e of careful) {
      expect(e.user_agent).toBe('careless-sdk/1.0 (token=[redacted:rs_])');
      expect(e.request_id).toMatch(UUID);
    }
    expect(JSON.stringify(stored)).not.toMatch(SECRET_PATTERN);

    // The minted key reads its own creation in its feed: the request's metadata, scrubbed.
    const minted = results[5]!.body.key.plaintext_key as string;
    const feed = await call(t.app, 'GET', '/v1/audit', { token: minted, headers: careless });
    expect(feed.status).toBe(200);
    expect(feed.raw).toContain('careless-sdk/1.0 (token=[redacted:rs_])');
    for (const s of secrets) expect(feed.raw).not.toContain(s);
  });

  it('admin routes: the same, and the operator token in a URL is scrubbed too', async ({ app: t, tenant }) => {
    const secrets = [tenant.serviceKey, tenant.apiKey, ADMIN_TOKEN];
    const careless = { 'x-request-id': tenant.serviceKey, 'user-agent': `ops-script ${tenant.apiKey}` };
    lines.length = 0;
    const results = [
      await call(t.admin, 'GET', `/internal/v1/accounts/${tenant.accountId}/service-keys?token=${ADMIN_TOKEN}`, { token: ADMIN_TOKEN }),
      await call(t.admin, 'POST', `/internal/v1/service-keys/${tenant.serviceKey}/rotate`, { token: ADMIN_TOKEN }),
      await call(t.admin, 'GET', `/internal/v1/accounts/${tenant.accountId}/service-keys?key=${tenant.apiKey}`, { token: ADMIN_TOKEN }),
      await call(t.admin, 'POST', '/internal/v1/accounts', { token: ADMIN_TOKEN, body: { name: 'careless ops' }, headers: careless }),
    ];
    for (const res of results) expectClean(res, secrets);
    expect(results[3]!.status).toBe(201);
    expect(results[3]!.headers['x-request-id']).toMatch(UUID);

    const logged = lines.join('');
    for (const s of secrets) expect(logged).not.toContain(s);
    expect(logged).toContain('[redacted:sk_svc_test_]');
    expect(logged).toContain('service-keys?token=[redacted]');

    const stored = await storedMeta(t, results[3]!.body.account.id as string);
    expect(stored.map((e) => e.event_type)).toEqual(['account_created']);
    expect(stored[0]!.user_agent).toBe('ops-script [redacted:sk_test_]');
    expect(stored[0]!.request_id).toMatch(UUID);
  });

  // Last in the file: it closes the public app it listens with.
  it('on a real socket: the raw request line and headers get the same treatment', async ({ app: t, tenant }) => {
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    lines.length = 0;
    try {
      const res = await fetch(`${address}/v1/keys?limit=1&key=${tenant.apiKey}`, {
        headers: { authorization: `Bearer ${tenant.serviceKey}`, 'x-request-id': tenant.apiKey, 'user-agent': `curl/8 ${tenant.apiKey}` },
      });
      expect(res.status).toBe(422);
      expect(res.headers.get('x-request-id')).toMatch(UUID);
      expect(JSON.stringify([...res.headers])).not.toContain(tenant.apiKey);
      await res.text();
    } finally {
      await t.app.close();
    }
    const logged = lines.join('');
    expect(logged).toContain('/v1/keys?limit=1&key=[redacted:sk_test_]');
    expect(logged).not.toContain(tenant.apiKey);
  });
});

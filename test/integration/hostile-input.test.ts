import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { describe, expect, inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { queryRows } from '../../src/db/statements.js';
import { ERROR_STATUS } from '../../src/http/plugins/error-status.js';
import { loggerOptions } from '../../src/http/plugins/logger.js';
import { mintAgent } from '../support/agents.js';
import { appTest } from '../support/fixtures.js';
import { ADMIN_TOKEN, addServiceKey, call, createTestApp, type TestApp } from '../support/harness.js';
import type { Ctx, Row } from '../support/hostile-row.js';
import { holdSocket, portOf, sendRaw, type RawRequest } from '../support/raw-http.js';
import { delegationRows } from '../support/delegation-rows.js';
import { scopeRows } from '../support/scope-rows.js';
import { secretRows } from '../support/secret-rows.js';

/*
 * The hostile-input table (issue 27, item 5): every case of the red-team, each one request sent as
 * raw bytes over a real socket to a listening server, with what it must answer and what it must not
 * do. Each row is checked for: its status and envelope code; no 5xx; no log line above info while
 * it ran; no stack, SQL or internals in the answer; and no compliance event written unless the row
 * says so. test/fuzz/hostile-input.test.ts explores the same surface at random; this table keeps
 * every case found so far, and grows with each new one.
 *
 * The server runs as in production behind one proxy: TRUST_PROXY=1, and a short REQUEST_TIMEOUT_MS
 * so the held-body rows finish quickly.
 */

const REQUEST_TIMEOUT_MS = 700;

/** Every log line of the file's apps, parsed, beside the run's log file (where the leak check reads). */
const logs: { level: string; msg: string; status?: number; res?: { statusCode?: number } }[] = [];
/** Levels are written as names (logger.ts); these are the ones above info. */
const ABOVE_INFO = new Set(['warn', 'error', 'fatal']);
const capture = new Writable({
  write(chunk: Buffer, _enc, next) {
    for (const line of String(chunk).split('\n').filter(Boolean)) logs.push(JSON.parse(line));
    next();
  },
});
const logger = pino(
  loggerOptions('info'),
  pino.multistream([
    { stream: pino.destination({ dest: path.join(inject('runDir'), 'logs', `${process.pid}.log`), sync: true, mkdir: true }) },
    { stream: capture },
  ]),
);

const it = appTest({ trustProxy: 1, requestTimeoutMs: REQUEST_TIMEOUT_MS, logger });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MISSING_ID = '00000000-0000-4000-8000-000000000000';
/** What only the server could have written: driver and SQL messages, stack frames, file paths. */
const LEAK = /(syntax error at|violates \S+ constraint|relation "|column "|Failed query|params: |node_modules|\bat \S+ \(\/|\.ts:\d+:\d+|\.js:\d+:\d+|"stack"|FST_ERR)/i;

const json = [['content-type', 'application/json']] as [string, string][];
const bearer = (token: string): [string, string] => ['authorization', `Bearer ${token}`];
const mintHeaders = (c: Ctx, key = `hostile-${Math.random()}`): [string, string][] => [bearer(c.tenant.serviceKey), ...json, ['idempotency-key', key]];
const mint = (body: string, key?: string) => (c: Ctx): RawRequest => ({ method: 'POST', path: '/v1/keys', headers: mintHeaders(c, key), body });
const operator = (body: string): RawRequest => ({ method: 'POST', path: '/internal/v1/accounts', headers: [bearer(ADMIN_TOKEN), ...json], body });

/** The stored ip of the event a request id wrote. */
async function storedIp(t: TestApp, requestId: string): Promise<string | null | undefined> {
  const rows = await queryRows<{ ip: string | null }>(t.database.db, sql`select ip from compliance_events where request_id = ${requestId}`);
  expect(rows, `events of ${requestId}`).toHaveLength(1);
  return rows[0]?.ip;
}

/**
 * Events the row could have written: its own request id's (any account), and the file's tenant's
 * (a request without an id of ours). Not the whole table: on Postgres other files share it.
 */
async function eventCount(t: TestApp, accountId: string, requestId: string | undefined): Promise<number> {
  const [row] = await queryRows<{ n: string }>(
    t.database.db,
    sql`select count(*)::text as n from compliance_events where account_id = ${accountId} or request_id = ${requestId ?? null}`,
  );
  return Number(row!.n);
}

/** The row's request with an X-Request-Id of its own, unless it sends one (or raw bytes). */
function tagged(req: RawRequest, index: number): { req: RawRequest; requestId: string | undefined } {
  if (req.raw !== undefined) return { req, requestId: undefined };
  const given = req.headers?.find(([n]) => n.toLowerCase() === 'x-request-id')?.[1];
  if (given !== undefined) return { req, requestId: given };
  const requestId = `hostile-row-${index}-${Math.random().toString(36).slice(2)}`;
  return { req: { ...req, headers: [...(req.headers ?? []), ['x-request-id', requestId]] }, requestId };
}

/** Framework and Node-level errors: the same on both listeners. */
function frameworkRows(listener: 'public' | 'admin'): Row[] {
  const at = (name: string) => `${listener}: ${name}`;
  const held = (c: Ctx): RawRequest =>
    listener === 'public' ? { ...mint('{"name":"he')(c), announce: 100 } : { ...operator('{"name":"he'), announce: 100 };
  return [
    { name: at('unknown path'), listener, request: () => ({ method: 'GET', path: '/nope' }), status: 404, code: 'not_found' },
    { name: at('a method the path has not'), listener, request: () => ({ method: 'PUT', path: '/healthz', body: '{}', headers: json }), status: 404, code: 'not_found' },
    { name: at('TRACE'), listener, request: () => ({ method: 'TRACE', path: '/healthz' }), status: 404, code: 'not_found' },
    { name: at('QUERY without a content type'), listener, request: () => ({ method: 'QUERY', path: '/healthz' }), status: 404, code: 'not_found' },
    { name: at('QUERY with a body and no content type'), listener, request: () => ({ method: 'QUERY', path: '/healthz', body: 'x' }), status: 404, code: 'not_found' },
    { name: at('static path with ..'), listener, request: () => ({ method: 'GET', path: '/docs/static/../x' }), status: 404, code: 'not_found' },
    { name: at('static path with %00'), listener, request: () => ({ method: 'GET', path: '/docs/static/%00' }), status: 404, code: 'not_found' },
    { name: at('static path with an encoded ../'), listener, request: () => ({ method: 'GET', path: '/docs/static/..%2f..%2fpackage.json' }), status: 404, code: 'not_found' },
    { name: at('a malformed percent-encoding'), listener, request: () => ({ method: 'GET', path: '/v1/keys/%E0%A4%A' }), status: 404, code: 'not_found' },
    { name: at('HEAD on the liveness probe is served'), listener, request: () => ({ method: 'HEAD', path: '/healthz' }), status: 200, code: null },
    { name: at('a request line that is not HTTP'), listener, request: () => ({ method: '', path: '', raw: 'GARBAGE\r\n\r\n' }), status: 400, code: 'bad_request', closes: true },
    { name: at('a header line without a colon'), listener, request: () => ({ method: '', path: '', raw: 'GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n' }), status: 400, code: 'bad_request', closes: true },
    { name: at('a bare LF in a header'), listener, request: () => ({ method: '', path: '', raw: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: b\nc\r\n\r\n' }), status: 400, code: 'bad_request', closes: true },
    { name: at('Content-Length and Transfer-Encoding together (smuggling)'), listener, request: () => ({ method: 'POST', path: '/healthz', headers: [['content-length', '4'], ['transfer-encoding', 'chunked']], body: '0\r\n\r\n' }), status: 400, code: 'bad_request', closes: true },
    { name: at('headers over 16 KiB'), listener, request: () => ({ method: 'GET', path: '/healthz', headers: [['x-big', 'a'.repeat(20_000)]] }), status: 431, code: 'headers_too_large', closes: true },
    { name: at('a connection that sends nothing'), listener, request: () => ({ method: '', path: '', raw: '' }), status: 408, code: 'request_timeout', closes: true, check: (res) => void expect(res.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000) },
    { name: at('headers that never finish'), listener, request: () => ({ method: '', path: '', raw: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n' }), status: 408, code: 'request_timeout', closes: true, check: (res) => void expect(res.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000) },
    { name: at('a body that never finishes (10 of 100 bytes)'), listener, request: held, status: 408, code: 'request_timeout', closes: true, check: (res) => void expect(res.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000) },
    { name: at('a client that leaves mid-body is not a database outage'), listener, request: held, abortAfterMs: 150, status: 0, code: null },
  ];
}

/** HEAD is not served where a GET records a read (Fastify would add it to every GET). */
const headRows: Row[] = [
  { name: 'HEAD /v1/keys writes no service_key_list_read', listener: 'public', request: (c) => ({ method: 'HEAD', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey)] }), status: 404, code: null },
  { name: 'HEAD /api/v1/keys', listener: 'public', request: (c) => ({ method: 'HEAD', path: '/api/v1/keys', headers: [bearer(c.tenant.serviceKey)] }), status: 404, code: null },
  { name: 'HEAD /v1/keys/{id}', listener: 'public', request: (c) => ({ method: 'HEAD', path: `/v1/keys/${c.agent.id}`, headers: [bearer(c.tenant.serviceKey)] }), status: 404, code: null },
  { name: 'HEAD /v1/audit writes no audit_read', listener: 'public', request: (c) => ({ method: 'HEAD', path: '/v1/audit', headers: [bearer(c.tenant.apiKey)] }), status: 404, code: null },
  { name: 'HEAD on an internal list', listener: 'admin', request: (c) => ({ method: 'HEAD', path: `/internal/v1/accounts/${c.tenant.accountId}/service-keys`, headers: [bearer(ADMIN_TOKEN)] }), status: 404, code: null },
  { name: 'GET /v1/keys still records its read', listener: 'public', request: (c) => ({ method: 'GET', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey)] }), status: 200, code: null, events: 1 },
];

/** TRUST_PROXY=1: the client IP is the hop the one proxy saw, never what the client wrote further left. */
const proxyRows: Row[] = [
  {
    name: 'a spoofed leftmost X-Forwarded-For is not the stored ip: the rightmost hop is',
    listener: 'public',
    request: (c) => ({ method: 'GET', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey), ['x-forwarded-for', '203.0.113.66, 198.51.100.7'], ['x-request-id', 'hostile-xff-spoof']] }),
    status: 200,
    code: null,
    events: 1,
    check: async (_res, c) => expect(await storedIp(c.t, 'hostile-xff-spoof')).toBe('198.51.100.7'),
  },
  {
    name: 'markup in X-Forwarded-For never reaches the stored ip (the socket address stands in)',
    listener: 'public',
    request: (c) => ({ method: 'GET', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey), ['x-forwarded-for', '<img src=x onerror=alert(1)>'], ['x-request-id', 'hostile-xff-junk']] }),
    status: 200,
    code: null,
    events: 1,
    check: async (_res, c) => {
      expect(await storedIp(c.t, 'hostile-xff-junk')).toBe('127.0.0.1');
      expect(JSON.stringify(logs), 'a log line').not.toContain('onerror');
    },
  },
  {
    name: 'a valid address left of junk is not picked either',
    listener: 'public',
    request: (c) => ({ method: 'GET', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey), ['x-forwarded-for', '203.0.113.5, not-an-ip'], ['x-request-id', 'hostile-xff-mixed']] }),
    status: 200,
    code: null,
    events: 1,
    check: async (_res, c) => expect(await storedIp(c.t, 'hostile-xff-mixed')).toBe('127.0.0.1'),
  },
  {
    name: 'the self-rotation bucket is the rightmost hop: a fresh leftmost per attempt does not escape it',
    listener: 'public',
    before: async (c) => {
      // Failed self-rotations: 10 per 15 minutes per address (agents.self_rotate.failures).
      for (let i = 0; i < 10; i++) {
        const res = await sendRaw(c.port.public, selfRotate(c, `203.0.113.${i + 1}, 198.51.100.50`));
        expect(res.status).toBe(401);
      }
    },
    request: (c) => selfRotate(c, '203.0.113.99, 198.51.100.50'),
    status: 429,
    code: 'rate_limited',
    check: async (_res, c) => expect((await sendRaw(c.port.public, selfRotate(c, '203.0.113.99, 198.51.100.51'))).status).toBe(401),
  },
];

function selfRotate(c: Ctx, forwardedFor: string): RawRequest {
  return { method: 'POST', path: '/v1/agents/self/rotate-key', headers: [bearer(c.agent.apiKey), ...json, ['x-forwarded-for', forwardedFor]], body: '{"rotationSecret":"wrong"}' };
}

/** Hostile JSON and numbers: refused with 422 (or 413), never stored, never a 500. */
const jsonRows: Row[] = [
  { name: 'truncated JSON', listener: 'public', request: mint('{"name": '), status: 422, code: 'validation_error' },
  { name: 'JSON with __proto__', listener: 'public', request: mint('{"name":"p","__proto__":{"admin":true}}'), status: 422, code: 'validation_error' },
  { name: 'JSON with constructor.prototype', listener: 'public', request: mint('{"name":"p","constructor":{"prototype":{"admin":true}}}'), status: 422, code: 'validation_error' },
  { name: 'deeply nested arrays', listener: 'public', request: mint(`{"name":${'['.repeat(5_000)}${']'.repeat(5_000)}}`), status: 422, code: 'validation_error' },
  { name: 'a number beyond double range', listener: 'public', request: mint('{"name":"n","monthly_cap_cents":1e400}'), status: 422, code: 'validation_error' },
  { name: 'a number beyond 2^53', listener: 'public', request: mint('{"name":"n","monthly_cap_cents":123456789012345678901234567890}'), status: 422, code: 'validation_error' },
  { name: 'a fractional cap', listener: 'public', request: mint('{"name":"n","monthly_cap_cents":1.5}'), status: 422, code: 'validation_error' },
  { name: 'a negative cap', listener: 'public', request: mint('{"name":"n","monthly_cap_cents":-1}'), status: 422, code: 'validation_error' },
  { name: 'a number as a string', listener: 'public', request: mint('{"name":"n","monthly_cap_cents":"100"}'), status: 422, code: 'validation_error' },
  { name: 'a lone surrogate in a name', listener: 'public', request: mint('{"name":"\\ud800"}'), status: 422, code: 'validation_error' },
  { name: 'a NUL byte in a name', listener: 'admin', request: () => operator('{"name":"a\\u0000b"}'), status: 422, code: 'validation_error' },
  { name: 'a body over the limit', listener: 'admin', request: () => operator(JSON.stringify({ name: 'x'.repeat(70_000) })), status: 413, code: 'payload_too_large' },
  { name: 'a JSON array where an object belongs', listener: 'admin', request: () => operator('[1,2,3]'), status: 422, code: 'validation_error' },
  { name: 'a wrong content type', listener: 'admin', request: () => ({ method: 'POST', path: '/internal/v1/accounts', headers: [bearer(ADMIN_TOKEN), ['content-type', 'text/plain']], body: 'name=x' }), status: 422, code: 'validation_error' },
  { name: 'a body without a content type', listener: 'admin', request: () => ({ method: 'POST', path: '/internal/v1/accounts', headers: [bearer(ADMIN_TOKEN)], body: '{"name":"x"}' }), status: 422, code: 'validation_error' },
  { name: 'bad query numbers', listener: 'public', request: (c) => ({ method: 'GET', path: '/v1/keys?limit=1e3&offset=-0', headers: [bearer(c.tenant.serviceKey)] }), status: 422, code: 'validation_error' },
];

/** Headers: credentials, request ids, idempotency keys. */
const headerRows: Row[] = [
  { name: 'no Authorization', listener: 'public', request: () => ({ method: 'GET', path: '/v1/keys' }), status: 401, code: 'unauthorized' },
  {
    name: 'a 401 before the body is read closes the socket rather than wait for the rest of the body',
    listener: 'public',
    request: () => ({ method: 'POST', path: '/v1/keys', headers: [...json, ['idempotency-key', 'k']], body: '{"name":"he', announce: 100 }),
    status: 401,
    code: 'unauthorized',
    closes: true,
    check: (res) => void expect(res.ms).toBeLessThan(REQUEST_TIMEOUT_MS),
  },
  { name: 'a Basic scheme', listener: 'public', request: () => ({ method: 'GET', path: '/v1/keys', headers: [['authorization', 'Basic dXNlcjpwYXNz']] }), status: 401, code: 'invalid_api_key' },
  { name: 'a 10 KB bearer token', listener: 'public', request: () => ({ method: 'GET', path: '/v1/keys', headers: [bearer('k'.repeat(10_000))] }), status: 401, code: 'invalid_api_key' },
  { name: 'a wrong operator token', listener: 'admin', request: () => ({ method: 'GET', path: `/internal/v1/accounts/${MISSING_ID}/service-keys`, headers: [bearer(`${ADMIN_TOKEN}x`)] }), status: 401, code: 'invalid_api_key' },
  {
    name: 'a hostile X-Request-Id is replaced by a generated one',
    listener: 'public',
    request: () => ({ method: 'GET', path: '/nope', headers: [['x-request-id', '<script>alert(1)</script>']] }),
    status: 404,
    code: 'not_found',
    check: (res) => void expect(res.headers['x-request-id']).toMatch(UUID),
  },
  { name: 'an id that is not a uuid', listener: 'public', request: (c) => ({ method: 'GET', path: "/v1/keys/1'%20or%20'1'='1", headers: [bearer(c.tenant.serviceKey)] }), status: 404, code: 'not_found' },
  { name: 'another account’s key id', listener: 'public', request: (c) => ({ method: 'GET', path: `/v1/keys/${c.tenant.apiKeyId}`, headers: [bearer(c.tenant.serviceKey)] }), status: 404, code: 'not_found' },
];

const idempotencyRows: Row[] = [
  { name: 'a mint without an Idempotency-Key', listener: 'public', request: (c) => ({ method: 'POST', path: '/v1/keys', headers: [bearer(c.tenant.serviceKey), ...json], body: '{"name":"n"}' }), status: 400, code: 'missing_idempotency_key' },
  { name: 'two Idempotency-Key headers', listener: 'public', request: (c) => ({ method: 'POST', path: '/v1/keys', headers: [...mintHeaders(c, 'dup-a'), ['idempotency-key', 'dup-b']], body: '{"name":"n"}' }), status: 400, code: 'duplicate_idempotency_key_header' },
  { name: 'an Idempotency-Key with whitespace', listener: 'public', request: mint('{"name":"n"}', 'a b'), status: 422, code: 'validation_error' },
  { name: 'an Idempotency-Key over 255 characters', listener: 'public', request: mint('{"name":"n"}', 'k'.repeat(256)), status: 422, code: 'validation_error' },
  {
    name: 'an Idempotency-Key reused with another body',
    listener: 'public',
    before: async (c) => expect((await sendRaw(c.port.public, mint('{"name":"first"}', 'hostile-reused')(c))).status).toBe(201),
    request: mint('{"name":"second"}', 'hostile-reused'),
    status: 409,
    code: 'idempotency_key_reused',
  },
];

/**
 * The H1 flow: the children of a revoked service key stayed valid and nothing could revoke them.
 * Each row's `before` revokes a service key (its children kept), checks its child still works,
 * then revokes the child through the operator route; the row's request is the child's next use.
 */
async function childOfRevokedServiceKey(c: Ctx): Promise<string> {
  const svc = await addServiceKey(c.t, c.tenant.accountId);
  const child = await mintAgent(c.t, svc.serviceKey, { name: 'h1 child' });
  const keep = await call(c.t.admin, 'DELETE', `/internal/v1/keys/${svc.serviceKeyId}?children=keep`, { token: ADMIN_TOKEN });
  expect(keep.status).toBe(200);
  const still = await call(c.t.app, 'GET', '/v1/audit?limit=1', { token: child.apiKey });
  expect(still.status, 'a kept child works after its service key is revoked').toBe(200);
  const revoked = await call(c.t.admin, 'DELETE', `/internal/v1/keys/${child.id}`, { token: ADMIN_TOKEN });
  expect(revoked.status).toBe(200);
  return child.apiKey;
}
const h1: { child?: string } = {};
const reachRows: Row[] = [
  {
    name: 'public: a revoked service key\'s child, revoked by the operator, is refused on its next request (H1)',
    listener: 'public',
    before: async (c) => void (h1.child = await childOfRevokedServiceKey(c)),
    request: () => ({ method: 'GET', path: '/v1/audit', headers: [bearer(h1.child!)] }),
    status: 401,
    code: 'invalid_api_key',
  },
  {
    name: 'admin: verify of that child answers invalid_api_key (H1)',
    listener: 'admin',
    before: async (c) => void (h1.child = await childOfRevokedServiceKey(c)),
    request: () => ({ method: 'POST', path: '/internal/v1/verify', headers: [bearer(ADMIN_TOKEN), ...json], body: JSON.stringify({ key: h1.child, verb: 'call' }) }),
    status: 200,
    code: null,
    check: (res) => expect(JSON.parse(res.body)).toMatchObject({ valid: false, code: 'invalid_api_key' }),
  },
];

/** The agent's own routes and the feed's exclude filter (issue 30). */
const check = (c: Ctx, body: string): RawRequest => ({ method: 'POST', path: '/v1/agents/self/check', headers: [bearer(c.agent.apiKey), ...json], body });
const feed = (c: Ctx, query: string): RawRequest => ({ method: 'GET', path: `/v1/audit?${query}`, headers: [bearer(c.agent.apiKey)] });
const selfRows: Row[] = [
  { name: 'GET /v1/agents/self records one agent_self_read', listener: 'public', request: (c) => ({ method: 'GET', path: '/v1/agents/self', headers: [bearer(c.agent.apiKey)] }), status: 200, code: null, events: 1 },
  { name: 'a check writes no event', listener: 'public', request: (c) => check(c, '{"verb":"call","cost_cents":1}'), status: 200, code: null },
  { name: 'a check with a cost over any cap is 422', listener: 'public', request: (c) => check(c, '{"verb":"call","cost_cents":1e20}'), status: 422, code: 'validation_error' },
  { name: 'a check naming a line that is no uuid is 422', listener: 'public', request: (c) => check(c, `{"verb":"call","line_id":"' or 1=1 --"}`), status: 422, code: 'validation_error' },
  { name: 'a check with __proto__ cannot grant itself', listener: 'public', request: (c) => check(c, '{"verb":"call","__proto__":{"allowed":true}}'), status: 422, code: 'validation_error' },
  { name: 'a check with a request_id (a debit field) is 422', listener: 'public', request: (c) => check(c, '{"verb":"call","cost_cents":5,"request_id":"r1"}'), status: 422, code: 'validation_error' },
  { name: 'exclude with SQL in a name is 422, no event', listener: 'public', request: (c) => feed(c, "exclude=audit_read'%20or%20'1'='1"), status: 422, code: 'validation_error' },
  { name: 'exclude over 2000 characters is 422', listener: 'public', request: (c) => feed(c, `exclude=${'audit_read,'.repeat(250)}`), status: 422, code: 'validation_error' },
  { name: 'exclude repeated as a parameter is one list', listener: 'public', request: (c) => feed(c, 'exclude=audit_read&exclude=agent_self_read'), status: 200, code: null, events: 1 },
];

/*
 * The table: every group above, and those kept beside it in test/support: `scopeRows` (a `verify`
 * operator token on every other internal route → 403, no event), `delegationRows` (bad input on
 * /v1/agents/self/keys) and `secretRows` (a live key in the URL, X-Request-Id or User-Agent reaches
 * no log line, response header or stored event). A new finding is a new row; a row's `before` can
 * set up what it needs.
 */
const TABLE: Row[] = [
  ...frameworkRows('public'),
  ...frameworkRows('admin'),
  ...headRows,
  ...proxyRows,
  ...jsonRows,
  ...headerRows,
  ...idempotencyRows,
  ...scopeRows(MISSING_ID),
  ...reachRows,
  ...selfRows,
  ...delegationRows(),
  ...secretRows(() => JSON.stringify(logs)),
];

let ctx: Ctx;
it.beforeAll(async ({ app: t, tenant }) => {
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  await t.admin.listen({ host: '127.0.0.1', port: 0 });
  ctx = { t, tenant, agent: await mintAgent(t, tenant.serviceKey, { selfRotation: true }), port: { public: portOf(t.app), admin: portOf(t.admin) } };
});

/** Lets the answer's own log lines (request completed, an error handler's) land before they are read. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('hostile input, over real sockets (the red-team table)', () => {
  it.each(TABLE.map((row, index) => [row.name, row, index] as const))('%s', async (_name, row, index) => {
    await row.before?.(ctx);
    const { req, requestId } = tagged(row.request(ctx), index);
    const events = await eventCount(ctx.t, ctx.tenant.accountId, requestId);
    await settle();
    const firstLog = logs.length;
    const res = await sendRaw(ctx.port[row.listener], req, REQUEST_TIMEOUT_MS + 4_000, row.abortAfterMs);
    await settle();
    const lines = logs.slice(firstLog);

    expect(res.status, res.body).toBe(row.status);
    if (row.code !== null) {
      const body = JSON.parse(res.body);
      expect(body, res.body).toMatchObject({ error: { code: row.code, message: expect.any(String), details: expect.any(Array) } });
      expect(ERROR_STATUS[row.code]).toBe(row.status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
    }
    expect(res.body).not.toMatch(LEAK);
    if (row.closes) expect(res.closed, 'the server closed the socket').toBe(true);
    expect(lines.filter((l) => ABOVE_INFO.has(l.level)).map((l) => l.msg), 'log lines above info').toEqual([]);
    expect(lines.filter((l) => (l.status ?? l.res?.statusCode ?? 0) >= 500), 'a 5xx recorded').toEqual([]);
    expect(await eventCount(ctx.t, ctx.tenant.accountId, requestId), 'compliance events written').toBe(events + (row.events ?? 0));
    await row.check?.(res, ctx);
  });
});

describe('connections beyond MAX_CONNECTIONS', () => {
  it('held sockets fill the cap, time out, and a fresh request is served again', async () => {
    const t = await createTestApp({ maxConnections: 4, requestTimeoutMs: 500, logger });
    try {
      await t.app.listen({ host: '127.0.0.1', port: 0 });
      const port = portOf(t.app);
      const started = Date.now();
      const held = [1, 2, 3, 4].map(() => holdSocket(port, 'POST /v1/keys HTTP/1.1\r\nHost: x\r\n'));
      await new Promise((resolve) => setTimeout(resolve, 100));
      const refused = await sendRaw(port, { method: 'GET', path: '/healthz' }, 2_000);
      expect(refused.status, 'over the cap a connection is closed at once').toBe(0);
      expect(refused.closed).toBe(true);
      await Promise.all(held.map((h) => h.closed));
      expect(Date.now() - started, 'the held sockets were closed by the request timeout').toBeLessThan(3_000);
      const fresh = await sendRaw(port, { method: 'GET', path: '/healthz' });
      expect(fresh.status).toBe(200);
    } finally {
      await t.close();
    }
  });
});

describe('TRUST_PROXY=true', () => {
  it('starts with a warning that a client can choose its own IP', async ({ app: t }) => {
    const firstLog = logs.length;
    const app = await buildApp({ services: t.services, logger, trustProxy: true });
    await app.close();
    expect(logs.slice(firstLog).filter((l) => l.level === 'warn' && /TRUST_PROXY=true/.test(l.msg))).toHaveLength(1);
  });
});

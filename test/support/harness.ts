import { appendFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql } from 'drizzle-orm';
import pino from 'pino';
import { inject } from 'vitest';
import { buildAdminApp, buildApp, type AppDeps } from '../../src/app.js';
import { openDatabase, type Database } from '../../src/db/database.js';
import { queryRows } from '../../src/db/statements.js';
import { ManualClock } from '../../src/domain/clock.js';
import type { OpContext } from '../../src/domain/context.js';
import { SECRET_PATTERN } from '../../src/domain/auth/secret-shapes.js';
import * as portal from '../../src/domain/portal/portal.service.js';
import { EventLinker } from '../../src/domain/audit/linker.js';
import type { EventStore } from '../../src/domain/audit/events.js';
import type { Services } from '../../src/domain/services.js';
import { createServices, type ServicesOptions } from '../../src/services.js';
import { loggerOptions } from '../../src/http/plugins/logger.js';
import { validateResponses, type Violation } from './openapi-validator.js';

/** The operator token of every test app; random-looking, as the start-up rule (config.ts) requires. */
export const ADMIN_TOKEN = 'test-aa81b809d166022f2b5ea9670302137be56c8ae269d90428b79fc10afb8f4e04';

let shared: Promise<Database> | undefined;

/**
 * This test file's database: a small pool on the run's Postgres database, or an in-memory PGlite
 * (migrated) in embedded mode. One per test file (vitest isolates modules per file).
 */
export function testDatabase(): Promise<Database> {
  shared ??= (async () => {
    const url = inject('databaseUrl');
    if (url) return openDatabase({ databaseUrl: url, poolMax: 8 });
    const db = await openDatabase({});
    await db.migrate();
    return db;
  })();
  return shared;
}

/** A logger that writes to this run's log directory, where teardown looks for leaked secrets. */
export function testLogger(level = 'info') {
  const file = path.join(inject('runDir'), 'logs', `${process.pid}.log`);
  return pino(loggerOptions(level, [ADMIN_TOKEN]), pino.destination({ dest: file, sync: true, mkdir: true }));
}

/** Records every secret a response carried, so teardown can grep the logs for each of them. */
export function recordSecrets(text: string): void {
  const found = text.match(SECRET_PATTERN);
  if (found) appendFileSync(path.join(inject('runDir'), 'secrets', `${process.pid}.txt`), `${found.join('\n')}\n`);
}

/** Records a secret that has no recognisable shape (an operator token), for the same teardown grep. */
export function recordLiteralSecret(secret: string): void {
  appendFileSync(path.join(inject('runDir'), 'secrets', `${process.pid}.txt`), `${secret}\n`);
}

/**
 * Where a secret may legitimately leave: the first answer of a mint, a rotation, a self-rotation,
 * a delegation and the portal's issuing routes. Every other response body is kept for teardown, which fails the
 * run if any issued secret or the admin token appears in one.
 */
const ISSUING = /^(\/api)?\/v1\/(keys(\/[^/]+\/(rotate|rotation-secret))?|agents\/self\/(rotate-key|keys))$|^\/internal\/v1\/(bootstrap|(service-keys|keys)\/[^/]+\/rotate|accounts\/[^/]+\/(service-keys|api-keys))$|^\/console\/((service-keys|keys)\/[^/]+\/rotate|accounts\/[^/]+\/(service-keys|portal-keys))$/;
export function recordResponseBody(method: string, url: string, status: number, body: string): void {
  const pathOnly = url.split('?')[0]!;
  const mayIssue = method === 'POST' && (status === 200 || status === 201) && ISSUING.test(pathOnly);
  if (mayIssue || body.length === 0) return;
  // One body per line, so the teardown can count them.
  appendFileSync(path.join(inject('runDir'), 'bodies', `${process.pid}.txt`), `${body.replace(/\n/g, ' ')}\n`);
}

/**
 * The stored responses of this file's database go to the run directory, where teardown greps them
 * for every issued secret: a replay must never be able to re-disclose one (spec §5).
 */
async function dumpIdempotencyRows(database: Database): Promise<void> {
  const rows = await queryRows<{ body: string | null }>(database.db, sql`select response_body::text as body from idempotency_keys`);
  const lines = rows.map((r) => (r.body ?? '').replace(/\n/g, ' ')).join('\n');
  appendFileSync(path.join(inject('runDir'), 'idempotency', `${process.pid}.txt`), rows.length ? `${lines}\n` : '');
}

/**
 * What the compliance log of this file's database stored of each request (request id, user agent,
 * ip) and each event's details, for the same teardown: the account's keys read these back through
 * the feed, so nothing shaped like a secret may be stored there.
 */
async function dumpEventMeta(database: Database): Promise<void> {
  const rows = await queryRows<{ line: string }>(
    database.db,
    sql`select json_build_array(request_id, user_agent, ip, data)::text as line from compliance_events`,
  );
  appendFileSync(path.join(inject('runDir'), 'events', `${process.pid}.txt`), rows.map((r) => `${r.line.replace(/\n/g, ' ')}\n`).join(''));
}

/** Every response's headers (x-request-id echoes what the client sent), for the same teardown. */
function recordResponseHeaders(headers: Record<string, unknown>): void {
  appendFileSync(path.join(inject('runDir'), 'headers', `${process.pid}.txt`), `${JSON.stringify(headers)}\n`);
}

export interface TestApp {
  app: FastifyInstance;
  admin: FastifyInstance;
  database: Database;
  /** The services the apps were given (src/services.ts). */
  services: Services;
  /** The database and a linker, for tests that call domain functions directly. */
  store: EventStore;
  clock: ManualClock;
  /** Responses that did not match the OpenAPI document (call() and close() fail on them). */
  violations: Violation[];
  close(): Promise<void>;
}

const violationsOf = new WeakMap<FastifyInstance, Violation[]>();

function failOnViolations(violations: Violation[]): void {
  if (violations.length === 0) return;
  const found = violations.splice(0).map((v) => `  ${v.message} (request ${v.requestId})`);
  throw new Error(`response(s) not matching the OpenAPI document:\n${found.join('\n')}`);
}

export type TestAppOptions = Partial<Omit<AppDeps, 'services'>> & { database?: Database; services?: ServicesOptions };

export async function createTestApp(overrides: TestAppOptions = {}): Promise<TestApp> {
  const { database: given, services: serviceOptions, ...appOverrides } = overrides;
  const database = given ?? (await testDatabase());
  const clock = new ManualClock();
  const services = createServices(database, serviceOptions);
  const deps: AppDeps = { services, logger: testLogger(), clock, ...appOverrides };
  const app = await buildApp(deps);
  const admin = await buildAdminApp({ ...deps, adminToken: ADMIN_TOKEN });
  recordLiteralSecret(ADMIN_TOKEN);
  const violations: Violation[] = [];
  for (const a of [app, admin]) {
    a.addHook('onSend', async (req, reply, payload) => {
      if (typeof payload === 'string') {
        recordSecrets(payload);
        recordResponseBody(req.method, req.url, reply.statusCode, payload);
      }
      recordResponseHeaders(reply.getHeaders());
      return payload;
    });
    validateResponses(a, violations);
    violationsOf.set(a, violations);
  }
  await Promise.all([app.ready(), admin.ready()]);
  return {
    app,
    admin,
    database,
    services,
    store: { db: database.db, linker: new EventLinker(database.linkerDb) },
    clock,
    violations,
    async close() {
      await Promise.all([app.close(), admin.close()]);
      await dumpIdempotencyRows(database);
      await dumpEventMeta(database);
      failOnViolations(violations);
    },
  };
}

export interface Tenant {
  accountId: string;
  serviceKey: string;
  serviceKeyId: string;
  apiKey: string;
  apiKeyId: string;
}

const portalCtx = (now: Date): OpContext => ({
  actor: { kind: 'portal', keyId: null, keyPrefix: 'test' },
  meta: { requestId: null, ip: null, userAgent: 'vitest' },
  now,
});

/** A fresh account with one service key and one portal API key: every test makes its own. */
export async function createTenant(t: TestApp, environment: 'test' | 'live' = 'test'): Promise<Tenant> {
  const ctx = portalCtx(t.clock.now());
  const db = t.store;
  const account = await portal.createAccount(db, `tenant-${Math.random().toString(36).slice(2)}`, ctx);
  const sk = await portal.createServiceKey(db, { accountId: account.id, environment, name: 'svc' }, ctx);
  const ak = await portal.createPortalApiKey(db, { accountId: account.id, environment, name: 'portal' }, ctx);
  recordSecrets(`${sk.plaintext}\n${ak.plaintext}`);
  return { accountId: account.id, serviceKey: sk.plaintext, serviceKeyId: sk.row.id, apiKey: ak.plaintext, apiKeyId: ak.row.id };
}

/** Another service key in the same account. */
export async function addServiceKey(t: TestApp, accountId: string, environment: 'test' | 'live' = 'test') {
  const sk = await portal.createServiceKey(t.store, { accountId, environment, name: 'svc2' }, portalCtx(t.clock.now()));
  recordSecrets(sk.plaintext);
  return { serviceKey: sk.plaintext, serviceKeyId: sk.row.id };
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  /** Raw payload, sent as is (for malformed-body tests). */
  payload?: string;
  headers?: Record<string, string>;
}

export interface CallResult {
  status: number;
  headers: LightMyRequestResponse['headers'];
  body: any;
  raw: string;
}

/** A request the way Saperly's SDK makes it: Content-Type: application/json on every request. */
export async function call(app: FastifyInstance, method: string, url: string, opts: CallOptions = {}): Promise<CallResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json', ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await app.inject({
    method: method as 'GET',
    url,
    headers,
    payload: opts.payload ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
  });
  let body: unknown;
  try {
    body = res.body ? JSON.parse(res.body) : undefined;
  } catch {
    body = undefined;
  }
  const violations = violationsOf.get(app);
  if (violations) failOnViolations(violations);
  return { status: res.statusCode, headers: res.headers, body, raw: res.body };
}

/** Asserts the spec §10 envelope shape and returns the code. */
export function errorCode(res: CallResult): string {
  const e = res.body?.error;
  if (!e || typeof e.code !== 'string' || typeof e.message !== 'string' || !Array.isArray(e.details)) {
    throw new Error(`not an error envelope (status ${res.status}): ${res.raw.slice(0, 300)}`);
  }
  return e.code;
}

/** A database and a linker of its own, for tests that call domain functions directly. */
export const storeOf = (database: Database): EventStore => ({ db: database.db, linker: new EventLinker(database.linkerDb) });

import type { FastifyInstance } from 'fastify';
import { describe, expect, inject } from 'vitest';
import { PUBLIC_PREFIXES } from '../../src/app.js';
import { generateToken } from '../../src/domain/auth/credentials.js';
import * as portal from '../../src/domain/portal/portal.service.js';
import { mintAgent, type Agent } from '../support/agents.js';
import { mintChild, revokeChild } from '../support/child-keys.js';
import { NO_REQUEST } from '../../src/domain/audit/events.js';
import { ADMIN_TOKEN, addServiceKey, call, createTenant, errorCode, recordSecrets, type CallResult, type Tenant, type TestApp } from '../support/harness.js';
import { ROUTES, unlimitedRateLimits, type RouteSpec } from '../support/routes.js';
import { withLastCharChanged } from '../support/tokens.js';
import { appTest } from '../support/fixtures.js';

const it = appTest({ rateLimit: unlimitedRateLimits() });

/*
 * The security matrix (issue 8, point 4): every authenticated route × every way a caller can be
 * wrong, → the answer the contract gives (spec §2, §4, §6, §7), as one table. Every cell is declared:
 * a new route in test/support/routes.ts fails here until its row is written. 'valid' is the control
 * that shows the fixtures are right, so each rejection is the rejection and not a broken setup.
 */

const SCENARIOS = [
  'valid',
  'no credential',
  'malformed',
  'bad checksum',
  'unknown',
  'revoked',
  'wrong tier',
  "another service key's resource",
  "another account's resource",
  'other environment',
  'verify-scoped operator token',
  'API key without can_delegate',
] as const;
type Scenario = (typeof SCENARIOS)[number];

/** An expected answer: a status and, for errors, the envelope's code; or n/a where the scenario cannot apply. */
type Expect = readonly [number, string?] | 'n/a';

const UNAUTHORIZED = [401, 'unauthorized'] as const;
const INVALID = [401, 'invalid_api_key'] as const;
const NOT_FOUND = [404, 'not_found'] as const;
const INSUFFICIENT_SCOPE = [403, 'insufficient_scope'] as const;
/**
 * The rejections every authenticated route shares: spec §2, one answer whatever is wrong. An
 * operator token (kpo_…) is no key of the public API.
 */
const AUTH: Record<'no credential' | 'malformed' | 'bad checksum' | 'unknown' | 'revoked' | 'wrong tier' | 'verify-scoped operator token', Expect> & {
  'API key without can_delegate': Expect;
} = {
  'no credential': UNAUTHORIZED,
  malformed: INVALID,
  'bad checksum': INVALID,
  unknown: INVALID,
  revoked: INVALID,
  'wrong tier': INVALID,
  'verify-scoped operator token': INVALID,
  // A right only the delegation routes look at (their rows override it); no other route asks for it.
  'API key without can_delegate': 'n/a',
};
/**
 * The operator's routes: 'valid' is the bootstrap token, 'revoked' a revoked named admin token; no
 * tenants or environments to cross. Every route but verify refuses a verify-scoped token: a new
 * admin route that spreads this row is checked for it, and the test below checks every admin route
 * of the routes table whether or not its row says so.
 */
const OPERATOR = {
  ...AUTH,
  'verify-scoped operator token': INSUFFICIENT_SCOPE,
  "another service key's resource": 'n/a',
  "another account's resource": 'n/a',
  'other environment': 'n/a',
} as const;

/** The caller's own key or tree only: no other resource to name. */
const NO_OTHER = { "another service key's resource": 'n/a', "another account's resource": 'n/a', 'other environment': 'n/a' } as const;

const MATRIX: Record<string, Record<Scenario, Expect>> = {
  'keys.mint': { valid: [201], ...AUTH, "another service key's resource": 'n/a', "another account's resource": 'n/a', 'other environment': [422, 'validation_error'] },
  // A list shows only the caller's keys: the other service key's, account's or environment's are absent (checked below).
  'keys.list': { valid: [200], ...AUTH, "another service key's resource": [200], "another account's resource": [200], 'other environment': [200] },
  'keys.get': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.lineage': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.update': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.revoke': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.rotate': { valid: [201], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.rotation_secret': { valid: [201], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.suspend': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'keys.resume': { valid: [200], ...AUTH, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  // Spec §6: any key of the same account and environment may be read (so another service key's child is 200).
  'audit.read': { valid: [200], ...AUTH, "another service key's resource": [200], "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  // Spec §7: a revoked key whose rotation secret matches is 403 agent_revoked; self-rotation names no other resource.
  'agents.self_rotate': {
    valid: [200],
    ...AUTH,
    revoked: [403, 'agent_revoked'],
    "another service key's resource": 'n/a',
    "another account's resource": 'n/a',
    'other environment': 'n/a',
  },
  // The caller's own key only: no other resource to name.
  'agents.self': { valid: [200], ...AUTH, "another service key's resource": 'n/a', "another account's resource": 'n/a', 'other environment': 'n/a' },
  'agents.self_check': { valid: [200], ...AUTH, "another service key's resource": 'n/a', "another account's resource": 'n/a', 'other environment': 'n/a' },
  // Delegation: only a key its service key let delegate mints (a portal key is 403); any API key lists
  // its own tree (empty if it never delegated) and revokes only a descendant (any other key is 404).
  'agents.delegate': { valid: [201], ...AUTH, 'API key without can_delegate': [403, 'agent_permission_denied'], ...NO_OTHER },
  'agents.delegated_keys': { valid: [200], ...AUTH, 'API key without can_delegate': [200], ...NO_OTHER },
  'agents.revoke_delegated': { valid: [200], ...AUTH, 'API key without can_delegate': NOT_FOUND, "another service key's resource": NOT_FOUND, "another account's resource": NOT_FOUND, 'other environment': NOT_FOUND },
  'admin.accounts.create': { valid: [201], ...OPERATOR },
  'admin.accounts.update': { valid: [200], ...OPERATOR },
  'admin.service_keys.create': { valid: [201], ...OPERATOR },
  'admin.service_keys.list': { valid: [200], ...OPERATOR },
  'admin.service_keys.rotate': { valid: [201], ...OPERATOR },
  'admin.service_keys.revoke': { valid: [200], ...OPERATOR },
  'admin.api_keys.create': { valid: [201], ...OPERATOR },
  'admin.api_keys.revoke': { valid: [200], ...OPERATOR },
  'admin.bootstrap': { valid: [201], ...OPERATOR },
  'admin.verify': { valid: [200], ...OPERATOR, 'verify-scoped operator token': [200] },
  'admin.keys.list': { valid: [200], ...OPERATOR },
  'admin.keys.get': { valid: [200], ...OPERATOR },
  'admin.keys.revoke': { valid: [200], ...OPERATOR },
  'admin.keys.revoke_leaked': { valid: [200], ...OPERATOR },
  'admin.keys.suspend': { valid: [200], ...OPERATOR },
  'admin.keys.resume': { valid: [200], ...OPERATOR },
  'admin.keys.rotate': { valid: [201], ...OPERATOR },
  'admin.keys.revoke_as_leaked': { valid: [200], ...OPERATOR },
  // Prometheus scrapes with a `metrics` token (test/integration/metrics.test.ts); a `verify` one is refused.
  'admin.metrics': { valid: [200], ...OPERATOR },
  // The embedded database's dump; a server on Postgres answers 409 not_embedded (test/integration/backup.test.ts).
  'admin.backup': { valid: inject('databaseUrl') ? [409, 'not_embedded'] : [200], ...OPERATOR },
};

let t: TestApp;
let a: Tenant;
let b: Tenant;
let sibling: { serviceKey: string; id: string };
let live: { serviceKey: string; childId: string };
let revoked: { service: string; api: string; agent: Agent; operator: string };
let verifyToken: string;
let agent: Agent;
/** An agent whose service key set can_delegate, with a cap to delegate from. */
let delegator: Agent;
let uniq = 0;

it.beforeAll(async ({ app }) => {
  t = app;
  [a, b] = await Promise.all([createTenant(t), createTenant(t)]);
  const sk2 = await addServiceKey(t, a.accountId);
  sibling = { serviceKey: sk2.serviceKey, id: (await mintChild(t, { serviceKey: sk2.serviceKey })).id };
  const liveSk = await addServiceKey(t, a.accountId, 'live');
  live = { serviceKey: liveSk.serviceKey, childId: (await mintChild(t, { serviceKey: liveSk.serviceKey })).id };
  agent = await mintAgent(t, a.serviceKey, { selfRotation: true });
  delegator = await mintAgent(t, a.serviceKey, { canDelegate: true, monthlyCapCents: 1_000_000 });
  // Revoked credentials of each tier; the service key past its 60 s read grace (spec §2).
  const doomedSvc = await addServiceKey(t, a.accountId);
  await portal.revokeServiceKey(t.store, doomedSvc.serviceKeyId, {
    actor: { kind: 'portal', keyId: null, keyPrefix: 'test' },
    meta: { requestId: null, ip: null, userAgent: 'vitest' },
    now: t.clock.now(),
  });
  const doomedApi = await mintChild(t, a);
  await revokeChild(t, a, doomedApi.id);
  const doomedAgent = await mintAgent(t, a.serviceKey, { selfRotation: true, canDelegate: true, monthlyCapCents: 1000 });
  await revokeChild(t, a, doomedAgent.id);
  const opCtx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: NO_REQUEST, now: t.clock.now() };
  const suffix = Math.random().toString(36).slice(2);
  verifyToken = (await t.services.operatorTokens.create({ name: `matrix-verify-${suffix}`, scope: 'verify' }, opCtx)).plaintext_key;
  const doomedOperator = await t.services.operatorTokens.create({ name: `matrix-doomed-${suffix}`, scope: 'admin' }, opCtx);
  await t.services.operatorTokens.revoke(doomedOperator.id, opCtx);
  recordSecrets(`${verifyToken}\n${doomedOperator.plaintext_key}`);
  revoked = { service: doomedSvc.serviceKey, api: doomedApi.plaintext, agent: doomedAgent, operator: doomedOperator.plaintext_key };
  t.clock.advance(61_000);
}, 60_000);


const flip = withLastCharChanged;
const DELEGATION = { name: 'tool', permissions: 'call_only', budget_cents: 100, ttl_seconds: 3600 };

/** A fresh key the delegator delegates, through the route (the one way an agent gets one). */
async function delegated(): Promise<string> {
  const res = await call(t.app, 'POST', '/v1/agents/self/keys', { token: delegator.apiKey, body: DELEGATION, headers: { 'idempotency-key': `matrix-${++uniq}` } });
  expect(res.status, res.raw.slice(0, 300)).toBe(201);
  return res.body.key.id as string;
}

interface Built {
  app: FastifyInstance;
  method: string;
  url: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The request of one cell: the route, with the credential and target that the scenario calls for. */
async function build(route: RouteSpec, scenario: Scenario, prefix: string): Promise<Built> {
  const tier = route.credential;
  // The delegation routes' own key is the delegator's: its tree is what they read and revoke.
  const own = route.path.startsWith('/agents/self/keys') ? delegator.apiKey : undefined;
  const good = own ?? { service: a.serviceKey, api: a.apiKey, agent: agent.apiKey, delegator: delegator.apiKey, operator: ADMIN_TOKEN, none: '' }[tier];
  const token = (() => {
    switch (scenario) {
      case 'no credential':
        return undefined;
      case 'malformed':
        return 'not-a-key';
      case 'bad checksum':
        return flip(good);
      case 'unknown':
        return tier === 'service' ? generateToken('service', 'test').plaintext : tier === 'operator' ? `${ADMIN_TOKEN}-unknown` : generateToken('api', 'test').plaintext;
      case 'revoked':
        return { service: revoked.service, agent: revoked.agent.apiKey, api: revoked.api, delegator: revoked.agent.apiKey, operator: revoked.operator, none: '' }[tier];
      case 'wrong tier':
        return tier === 'service' ? a.apiKey : a.serviceKey;
      case 'verify-scoped operator token':
        return verifyToken;
      case 'API key without can_delegate':
        return a.apiKey;
      default:
        return good;
    }
  })();
  const idem = { 'idempotency-key': `matrix-${++uniq}` };
  const publicApp = (path: string) => `${prefix}${path}`;
  // The id a route acts on: a fresh key of the caller's own, or the scenario's foreign one.
  const target = async () => {
    if (scenario === "another service key's resource") return sibling.id;
    if (scenario === "another account's resource") return (await mintChild(t, b)).id;
    if (scenario === 'other environment') return live.childId;
    return (await mintChild(t, a)).id;
  };
  const op = () => ({ actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: t.clock.now() });
  switch (route.name) {
    case 'keys.mint':
      return { app: t.app, method: 'POST', url: publicApp('/keys'), token, headers: idem, body: { name: 'm', ...(scenario === 'other environment' ? { environment: 'live' } : {}) } };
    case 'keys.list':
      return { app: t.app, method: 'GET', url: publicApp('/keys?limit=100'), token };
    case 'keys.get':
      return { app: t.app, method: 'GET', url: publicApp(`/keys/${await target()}`), token };
    case 'keys.lineage':
      return { app: t.app, method: 'GET', url: publicApp(`/keys/${await target()}/lineage`), token };
    case 'keys.update':
      return { app: t.app, method: 'PATCH', url: publicApp(`/keys/${await target()}`), token, body: { name: 'renamed' } };
    case 'keys.revoke':
      return { app: t.app, method: 'DELETE', url: publicApp(`/keys/${await target()}`), token };
    case 'keys.rotate':
      return { app: t.app, method: 'POST', url: publicApp(`/keys/${await target()}/rotate`), token, headers: idem };
    case 'keys.rotation_secret':
      return { app: t.app, method: 'POST', url: publicApp(`/keys/${await target()}/rotation-secret`), token, headers: idem };
    case 'keys.suspend':
      return { app: t.app, method: 'POST', url: publicApp(`/keys/${await target()}/suspend`), token, body: { reason: 'matrix' } };
    case 'keys.resume':
      return { app: t.app, method: 'POST', url: publicApp(`/keys/${await target()}/resume`), token };
    case 'audit.read': {
      const id = scenario === 'valid' || AUTH[scenario as keyof typeof AUTH] ? 'self' : await target();
      return { app: t.app, method: 'GET', url: publicApp(`/audit?api_key_id=${id}`), token };
    }
    case 'agents.self_rotate': {
      // A valid agent rotates away its key: mint a fresh one per cell.
      const fresh = scenario === 'valid' ? await mintAgent(t, a.serviceKey, { selfRotation: true }) : agent;
      const secret = scenario === 'revoked' ? revoked.agent.rotationSecret : fresh.rotationSecret;
      return { app: t.app, method: 'POST', url: publicApp('/agents/self/rotate-key'), token: scenario === 'valid' ? fresh.apiKey : token, body: { rotationSecret: secret } };
    }
    case 'agents.self':
      return { app: t.app, method: 'GET', url: publicApp('/agents/self'), token };
    case 'agents.self_check':
      return { app: t.app, method: 'POST', url: publicApp('/agents/self/check'), token, body: { verb: 'call', cost_cents: 1 } };
    case 'agents.delegate':
      return { app: t.app, method: 'POST', url: publicApp('/agents/self/keys'), token, headers: idem, body: DELEGATION };
    case 'agents.delegated_keys':
      return { app: t.app, method: 'GET', url: publicApp('/agents/self/keys?depth=all'), token };
    case 'agents.revoke_delegated': {
      const id = scenario === 'valid' || scenario === 'API key without can_delegate' ? await delegated() : await target();
      return { app: t.app, method: 'DELETE', url: publicApp(`/agents/self/keys/${id}`), token };
    }
    case 'admin.accounts.create':
      return { app: t.admin, method: 'POST', url: '/internal/v1/accounts', token, body: { name: 'acct' } };
    case 'admin.accounts.update':
      return { app: t.admin, method: 'PATCH', url: `/internal/v1/accounts/${b.accountId}`, token, body: { reuse_reaction: 'revoke_chain' } };
    case 'admin.service_keys.create':
      return { app: t.admin, method: 'POST', url: `/internal/v1/accounts/${b.accountId}/service-keys`, token, body: {} };
    case 'admin.service_keys.list':
      return { app: t.admin, method: 'GET', url: `/internal/v1/accounts/${b.accountId}/service-keys`, token };
    case 'admin.service_keys.rotate':
    case 'admin.service_keys.revoke': {
      const victim = await portal.createServiceKey(t.store, { accountId: b.accountId, environment: 'test', name: 'victim' }, op());
      const rotate = route.name === 'admin.service_keys.rotate';
      return { app: t.admin, method: rotate ? 'POST' : 'DELETE', url: `/internal/v1/service-keys/${victim.row.id}${rotate ? '/rotate' : ''}`, token };
    }
    case 'admin.api_keys.create':
      return { app: t.admin, method: 'POST', url: `/internal/v1/accounts/${b.accountId}/api-keys`, token, body: {} };
    case 'admin.api_keys.revoke': {
      const victim = await portal.createPortalApiKey(t.store, { accountId: b.accountId, environment: 'test', name: 'victim' }, op());
      return { app: t.admin, method: 'DELETE', url: `/internal/v1/api-keys/${victim.row.id}`, token };
    }
    case 'admin.bootstrap':
      return { app: t.admin, method: 'POST', url: '/internal/v1/bootstrap', token, body: {} };
    case 'admin.verify':
      return { app: t.admin, method: 'POST', url: '/internal/v1/verify', token, body: { key: a.apiKey, verb: 'call' } };
    case 'admin.keys.list':
      return { app: t.admin, method: 'GET', url: `/internal/v1/accounts/${b.accountId}/keys`, token };
    case 'admin.keys.get':
      return { app: t.admin, method: 'GET', url: `/internal/v1/keys/${(await mintChild(t, b)).id}`, token };
    case 'admin.keys.revoke':
      return { app: t.admin, method: 'DELETE', url: `/internal/v1/keys/${(await mintChild(t, b)).id}`, token };
    case 'admin.metrics':
      return { app: t.admin, method: 'GET', url: '/metrics', token };
    case 'admin.backup':
      return { app: t.admin, method: 'GET', url: '/internal/v1/backup', token };
    case 'admin.keys.revoke_leaked':
      return { app: t.admin, method: 'POST', url: '/internal/v1/keys/revoke-leaked', token, body: { tokens: [(await mintChild(t, b)).plaintext] } };
    case 'admin.keys.suspend':
      return { app: t.admin, method: 'POST', url: `/internal/v1/keys/${(await mintChild(t, b)).id}/suspend`, token, body: { reason: 'matrix' } };
    case 'admin.keys.resume':
      return { app: t.admin, method: 'POST', url: `/internal/v1/keys/${(await mintChild(t, b)).id}/resume`, token };
    case 'admin.keys.rotate':
      return { app: t.admin, method: 'POST', url: `/internal/v1/keys/${(await mintChild(t, b)).id}/rotate`, token, body: { overlap_seconds: 60 } };
    case 'admin.keys.revoke_as_leaked':
      return { app: t.admin, method: 'POST', url: `/internal/v1/keys/${(await mintChild(t, b)).id}/revoke-leaked`, token };
  }
  throw new Error(`no request builder for ${route.name}: add one`);
}

const ROWS = ROUTES.filter((r) => r.credential !== 'none');
const CELLS = ROWS.flatMap((route) => {
  const prefixes = route.listener === 'public' ? [...PUBLIC_PREFIXES] : [''];
  return prefixes.flatMap((prefix) => SCENARIOS.map((scenario) => ({ route, prefix, scenario })));
}).filter(({ route, scenario }) => MATRIX[route.name]?.[scenario] !== 'n/a');

describe('security matrix: every route × every wrong caller', () => {
  it('declares every cell of every authenticated route', () => {
    for (const route of ROWS) {
      expect(MATRIX[route.name], `no matrix row for ${route.name}`).toBeDefined();
      for (const s of SCENARIOS) expect(MATRIX[route.name]![s], `${route.name} × ${s}`).toBeDefined();
    }
  });

  it.each(CELLS.map((c) => [`${c.prefix}${c.route.path}`, c.route.method, c.scenario, c] as const))('%s %s × %s', async (_p, _m, scenario, cell) => {
    const req = await build(cell.route, scenario, cell.prefix);
    const res: CallResult = await call(req.app, req.method, req.url, { token: req.token, body: req.body, headers: req.headers });
    const [status, code] = MATRIX[cell.route.name]![scenario] as readonly [number, string?];
    expect(res.status, res.raw.slice(0, 300)).toBe(status);
    if (code) expect(errorCode(res)).toBe(code);
    // One and the same message for every invalid credential: the answer never tells tier or state.
    if (code === 'invalid_api_key' && cell.route.listener === 'public') expect(res.body.error.message).toBe('The API key is invalid or has been revoked.');
    if (cell.route.name === 'agents.delegated_keys' && res.status === 200) {
      // The delegator's tree only: the portal key's is empty, and no key of another agent shows.
      const ids = (res.body.keys as { id: string }[]).map((k) => k.id);
      if (scenario === 'API key without can_delegate') expect(res.body.total).toBe(0);
      expect(ids).not.toContain(sibling.id);
      expect(ids).not.toContain(agent.id);
    }
    if (cell.route.name === 'keys.list' && res.status === 200) {
      const ids = (res.body.keys as { id: string }[]).map((k) => k.id);
      expect(ids).not.toContain(sibling.id);
      expect(ids).not.toContain(live.childId);
    }
  });
});

/*
 * Operator-token scopes over the routes table itself, not the matrix rows: a route another change
 * adds to the admin listener is checked here as soon as it is in test/support/routes.ts. Scope is
 * decided before the body is read, so any id and no body will do.
 */
describe('operator token scopes: every admin route of the routes table', () => {
  const ADMIN_ROUTES = ROUTES.filter((r) => r.listener === 'admin' && r.credential === 'operator');
  const anyUrl = (route: RouteSpec) => route.path.replace(/:[A-Za-z_]+/g, '3f1c8a52-7a0e-4d5b-9c43-2b1d6e0f9a17');

  it.each(ADMIN_ROUTES.filter((r) => r.name !== 'admin.verify').map((r) => [r.method, r.path, r] as const))(
    '%s %s refuses a verify-scoped token: 403 insufficient_scope',
    async (_m, _p, route) => {
      const res = await call(t.admin, route.method, anyUrl(route), { token: verifyToken });
      expect(res.status, res.raw.slice(0, 300)).toBe(403);
      expect(errorCode(res)).toBe('insufficient_scope');
    },
  );

  it.each(ADMIN_ROUTES.map((r) => [r.method, r.path, r] as const))('%s %s answers a named admin token as the bootstrap token', async (_m, _p, route) => {
    const named = await t.services.operatorTokens.create(
      { name: `matrix-admin-${++uniq}-${Math.random().toString(36).slice(2)}`, scope: 'admin' },
      { actor: { kind: 'portal', keyId: null, keyPrefix: 'test' }, meta: NO_REQUEST, now: t.clock.now() },
    );
    recordSecrets(named.plaintext_key);
    const req = await build(route, 'valid', '');
    const res = await call(req.app, req.method, req.url, { token: named.plaintext_key, body: req.body, headers: req.headers });
    expect(res.status, res.raw.slice(0, 300)).toBe((MATRIX[route.name]!.valid as readonly [number])[0]);
  });
});

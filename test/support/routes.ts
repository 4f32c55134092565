import { LIMIT_NAMES } from '../../src/http/plugins/limits.js';
import type { RateLimitOptions } from '../../src/http/plugins/rate-limit.js';

/*
 * Every route of both listeners, in one table, for the hostile-input fuzzer (test/fuzz) and the
 * security matrix (test/integration/security-matrix.test.ts). A new route is one more line here;
 * the fuzzer then generates hostile requests for it and the matrix fails until its expected answers
 * are declared.
 */

type Listener = 'public' | 'admin';
/**
 * Who may call it: a service key, an API key, the agent's own key (self-rotation), an API key its
 * service key let delegate (can_delegate), the operator, anyone.
 */
type Credential = 'service' | 'api' | 'agent' | 'delegator' | 'operator' | 'none';

export interface RouteSpec {
  name: string;
  listener: Listener;
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** With `:id` for the resource id; public routes are served under each of PUBLIC_PREFIXES. */
  path: string;
  credential: Credential;
  /** Field names of its JSON body (the fuzzer builds near-valid bodies from them). */
  bodyFields?: string[];
  /** Query parameters it reads. */
  queryFields?: string[];
  /** Needs an Idempotency-Key header. */
  idempotent?: boolean;
  /** A success may carry a secret (plaintext key, rotation secret): the only routes allowed to. */
  issuesSecret?: boolean;
  /** A success is not JSON (the Prometheus scrape's text, a backup's gzip); its errors are still the envelope. */
  textSuccess?: boolean;
  /** The fuzzer's runs, where a success is too costly for the default (a backup dumps the whole database). */
  fuzzRuns?: number;
}

export const ROUTES: RouteSpec[] = [
  { name: 'keys.mint', listener: 'public', method: 'POST', path: '/keys', credential: 'service', idempotent: true, issuesSecret: true,
    bodyFields: ['name', 'agent_label', 'line_id', 'permissions', 'monthly_cap_cents', 'environment', 'self_rotation', 'expires_at', 'ttl_seconds'] },
  { name: 'keys.list', listener: 'public', method: 'GET', path: '/keys', credential: 'service',
    queryFields: ['limit', 'offset', 'agent_label', 'agent_label_prefix', 'line_id', 'permissions', 'status'] },
  { name: 'keys.get', listener: 'public', method: 'GET', path: '/keys/:id', credential: 'service' },
  { name: 'keys.lineage', listener: 'public', method: 'GET', path: '/keys/:id/lineage', credential: 'service' },
  { name: 'keys.update', listener: 'public', method: 'PATCH', path: '/keys/:id', credential: 'service',
    bodyFields: ['name', 'agent_label', 'line_id', 'permissions', 'monthly_cap_cents', 'self_rotation', 'expires_at'] },
  { name: 'keys.revoke', listener: 'public', method: 'DELETE', path: '/keys/:id', credential: 'service' },
  { name: 'keys.rotate', listener: 'public', method: 'POST', path: '/keys/:id/rotate', credential: 'service', idempotent: true, issuesSecret: true,
    queryFields: ['rotation_secret'] },
  { name: 'keys.rotation_secret', listener: 'public', method: 'POST', path: '/keys/:id/rotation-secret', credential: 'service', idempotent: true,
    issuesSecret: true },
  { name: 'keys.suspend', listener: 'public', method: 'POST', path: '/keys/:id/suspend', credential: 'service', bodyFields: ['reason'] },
  { name: 'keys.resume', listener: 'public', method: 'POST', path: '/keys/:id/resume', credential: 'service' },
  { name: 'audit.read', listener: 'public', method: 'GET', path: '/audit', credential: 'api', queryFields: ['api_key_id', 'limit', 'event_types', 'before', 'exclude'] },
  { name: 'agents.self', listener: 'public', method: 'GET', path: '/agents/self', credential: 'api' },
  { name: 'agents.self_check', listener: 'public', method: 'POST', path: '/agents/self/check', credential: 'api', bodyFields: ['verb', 'line_id', 'cost_cents'] },
  { name: 'agents.self_rotate', listener: 'public', method: 'POST', path: '/agents/self/rotate-key', credential: 'agent', issuesSecret: true,
    bodyFields: ['rotationSecret'] },
  { name: 'agents.delegate', listener: 'public', method: 'POST', path: '/agents/self/keys', credential: 'delegator', idempotent: true, issuesSecret: true,
    bodyFields: ['name', 'agent_label', 'permissions', 'line_id', 'budget_cents', 'ttl_seconds', 'can_delegate'] },
  { name: 'agents.delegated_keys', listener: 'public', method: 'GET', path: '/agents/self/keys', credential: 'api', queryFields: ['depth', 'limit', 'offset'] },
  { name: 'agents.revoke_delegated', listener: 'public', method: 'DELETE', path: '/agents/self/keys/:id', credential: 'api' },
  { name: 'admin.accounts.create', listener: 'admin', method: 'POST', path: '/internal/v1/accounts', credential: 'operator', bodyFields: ['name'] },
  { name: 'admin.accounts.update', listener: 'admin', method: 'PATCH', path: '/internal/v1/accounts/:id', credential: 'operator', bodyFields: ['reuse_reaction'] },
  { name: 'admin.service_keys.create', listener: 'admin', method: 'POST', path: '/internal/v1/accounts/:id/service-keys', credential: 'operator',
    issuesSecret: true, bodyFields: ['environment', 'name'] },
  { name: 'admin.service_keys.list', listener: 'admin', method: 'GET', path: '/internal/v1/accounts/:id/service-keys', credential: 'operator' },
  { name: 'admin.service_keys.rotate', listener: 'admin', method: 'POST', path: '/internal/v1/service-keys/:id/rotate', credential: 'operator', issuesSecret: true },
  { name: 'admin.service_keys.revoke', listener: 'admin', method: 'DELETE', path: '/internal/v1/service-keys/:id', credential: 'operator' },
  { name: 'admin.api_keys.create', listener: 'admin', method: 'POST', path: '/internal/v1/accounts/:id/api-keys', credential: 'operator',
    issuesSecret: true, bodyFields: ['environment', 'name'] },
  { name: 'admin.api_keys.revoke', listener: 'admin', method: 'DELETE', path: '/internal/v1/api-keys/:id', credential: 'operator' },
  { name: 'admin.bootstrap', listener: 'admin', method: 'POST', path: '/internal/v1/bootstrap', credential: 'operator', issuesSecret: true, bodyFields: ['name'] },
  { name: 'admin.verify', listener: 'admin', method: 'POST', path: '/internal/v1/verify', credential: 'operator',
    bodyFields: ['key', 'verb', 'line_id', 'cost_cents', 'request_id'] },
  { name: 'admin.keys.list', listener: 'admin', method: 'GET', path: '/internal/v1/accounts/:id/keys', credential: 'operator',
    queryFields: ['status', 'prefix', 'kind', 'limit', 'cursor'] },
  { name: 'admin.keys.get', listener: 'admin', method: 'GET', path: '/internal/v1/keys/:id', credential: 'operator' },
  { name: 'admin.keys.revoke', listener: 'admin', method: 'DELETE', path: '/internal/v1/keys/:id', credential: 'operator', queryFields: ['children'] },
  { name: 'admin.keys.suspend', listener: 'admin', method: 'POST', path: '/internal/v1/keys/:id/suspend', credential: 'operator', bodyFields: ['reason'] },
  { name: 'admin.keys.resume', listener: 'admin', method: 'POST', path: '/internal/v1/keys/:id/resume', credential: 'operator' },
  { name: 'admin.keys.rotate', listener: 'admin', method: 'POST', path: '/internal/v1/keys/:id/rotate', credential: 'operator', issuesSecret: true, bodyFields: ['overlap_seconds'] },
  { name: 'admin.keys.revoke_as_leaked', listener: 'admin', method: 'POST', path: '/internal/v1/keys/:id/revoke-leaked', credential: 'operator' },
  { name: 'admin.keys.revoke_leaked', listener: 'admin', method: 'POST', path: '/internal/v1/keys/revoke-leaked', credential: 'operator', bodyFields: ['tokens'] },
  { name: 'admin.metrics', listener: 'admin', method: 'GET', path: '/metrics', credential: 'operator', textSuccess: true },
  { name: 'admin.backup', listener: 'admin', method: 'GET', path: '/internal/v1/backup', credential: 'operator', textSuccess: true, fuzzRuns: 40 },
  { name: 'health.live', listener: 'public', method: 'GET', path: '/healthz', credential: 'none' },
  { name: 'health.ready', listener: 'public', method: 'GET', path: '/readyz', credential: 'none' },
];

/** Unprefixed routes (health probes) are served as is; the others under every public prefix. */
export const UNPREFIXED = new Set(['health.live', 'health.ready']);

/** Rate limits far above what a test sends, for suites that test something other than the limits. */
export function unlimitedRateLimits(): RateLimitOptions {
  const rule = { max: 10_000_000, windowSeconds: 3600 };
  return { limits: Object.fromEntries(LIMIT_NAMES.map((n) => [n, rule])), authFailures: rule, selfRotateFailures: rule };
}

import type { ErrorCode } from '../../src/domain/errors.js';
import { recordSecrets, type TestApp } from './harness.js';
import type { RawRequest } from './raw-http.js';
import { ROUTES } from './routes.js';

/*
 * The hostile-input table's operator-scope rows (test/integration/hostile-input.test.ts): a `verify`
 * operator token may call verify only. Every other admin route of the routes table answers it 403
 * before reading the body, and writes nothing; a revoked one is the 401 of any bad token.
 */

interface ScopeRow {
  name: string;
  listener: 'public' | 'admin';
  before(c: { t: TestApp }): Promise<void>;
  request(): RawRequest;
  status: number;
  code: ErrorCode | null;
}

/** The rows; `missingId` stands in for every path parameter (scope is decided before it is read). */
export function scopeRows(missingId: string): ScopeRow[] {
  let tokens: { verify: string; revoked: string } | undefined;
  // Made by the first row that runs, on the file's app.
  const before = async ({ t }: { t: TestApp }) => {
    if (tokens) return;
    const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: t.clock.now() };
    const suffix = Math.random().toString(36).slice(2);
    const verify = await t.services.operatorTokens.create({ name: `hostile-verify-${suffix}`, scope: 'verify' }, ctx);
    const revoked = await t.services.operatorTokens.create({ name: `hostile-revoked-${suffix}`, scope: 'verify' }, ctx);
    await t.services.operatorTokens.revoke(revoked.id, ctx);
    recordSecrets(`${verify.plaintext_key}\n${revoked.plaintext_key}`);
    tokens = { verify: verify.plaintext_key, revoked: revoked.plaintext_key };
  };
  const scoped = (method: string, path: string, body?: string, token: 'verify' | 'revoked' = 'verify') => (): RawRequest => ({
    method,
    path,
    headers: [
      ['authorization', `Bearer ${tokens![token]}`],
      ['content-type', 'application/json'],
    ],
    ...(body === undefined ? {} : { body }),
  });
  const verifyBody = '{"key":"sk_test_nothing","verb":"call"}';
  const row = (name: string, listener: ScopeRow['listener'], request: () => RawRequest, status: number, code: ErrorCode | null): ScopeRow => ({ name, listener, before, request, status, code });
  return [
    ...ROUTES.filter((r) => r.listener === 'admin' && r.credential === 'operator' && r.name !== 'admin.verify').map((r) =>
      row(
        `a verify token on ${r.method} ${r.path}`,
        'admin',
        scoped(r.method, r.path.replace(/:[A-Za-z_]+/g, missingId), r.method === 'GET' ? undefined : '{"name":"scoped"}'),
        403,
        'insufficient_scope',
      ),
    ),
    row('a verify token on the internal OpenAPI document', 'admin', scoped('GET', '/internal/openapi.json'), 403, 'insufficient_scope'),
    row('a verify token verifies', 'admin', scoped('POST', '/internal/v1/verify', verifyBody), 200, null),
    row('a revoked verify token', 'admin', scoped('POST', '/internal/v1/verify', verifyBody, 'revoked'), 401, 'invalid_api_key'),
    row('a verify token on the public API', 'public', scoped('GET', '/v1/keys'), 401, 'invalid_api_key'),
  ];
}

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { describe, expect } from 'vitest';
import {
  createInternalClient,
  createPublicClient,
  isKeyplaneError,
  KeyplaneError,
  unwrap,
  type CreateKeyRequest,
  type ErrorCode,
  type InternalClient,
  type Key,
  type VerifyResult,
} from '../../clients/typescript/src/index.js';
import { NO_REQUEST } from '../../src/domain/audit/events.js';
import { CLIENT_DIR } from '../../scripts/client-generate.js';
import { ROOT } from '../../scripts/openapi.js';
import { it } from '../support/fixtures.js';
import { ADMIN_TOKEN, recordSecrets } from '../support/harness.js';

/*
 * The client package (clients/typescript, @keyplane/client) against a listening server: it builds with
 * its own tsconfig, and its public and internal clients drive the key lifecycle, the audit feed and
 * verify over real HTTP, with errors thrown as typed KeyplaneErrors. That its types are fresh is
 * test/unit/typescript-client.test.ts's (no database needed).
 */

const listen = async (app: FastifyInstance) => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
};

let publicUrl: string;
let adminUrl: string;
let internal: InternalClient;
it.beforeAll(async ({ app: t }) => {
  publicUrl = await listen(t.app);
  adminUrl = await listen(t.admin);
  internal = createInternalClient({ baseUrl: adminUrl, operatorToken: ADMIN_TOKEN });
});

const idempotency = () => ({ 'Idempotency-Key': `client-test-${Math.random().toString(36).slice(2)}` });

/** A child key minted through the public client; its plaintext is recorded for the leak check. */
async function mintKey(serviceKey: string, body: CreateKeyRequest) {
  const keys = createPublicClient({ baseUrl: publicUrl, apiKey: serviceKey });
  const { key } = await unwrap(keys.POST('/v1/keys', { params: { header: idempotency() }, body }));
  // The first answer of a mint carries the plaintext (a replay would not).
  if (!key.plaintext_key) throw new Error('a first mint answered no plaintext_key');
  recordSecrets(key.plaintext_key);
  return { ...key, plaintext_key: key.plaintext_key };
}

describe('@keyplane/client (clients/typescript)', () => {
  it('builds with its own tsconfig, and the built module works', async () => {
    // Inside the repository, so that the built module finds openapi-fetch in the root node_modules.
    mkdirSync(path.join(ROOT, '.test-runs'), { recursive: true });
    const out = mkdtempSync(path.join(ROOT, '.test-runs', 'client-dist-'));
    try {
      const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      await promisify(execFile)(process.execPath, [tsc, '-p', path.join(ROOT, CLIENT_DIR, 'tsconfig.json'), '--outDir', out]);
      expect(existsSync(path.join(out, 'index.d.ts'))).toBe(true);
      const built = (await import(pathToFileURL(path.join(out, 'index.js')).href)) as typeof import('../../clients/typescript/src/index.js');
      const probe = await built.unwrap(built.createPublicClient({ baseUrl: `${publicUrl}/`, apiKey: 'unused' }).GET('/healthz'));
      expect(probe.status).toBe('ok');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);

  it('public client: mint, list, get, rotate, revoke, and the audit feed of the minted key', async ({ tenant }) => {
    const keys = createPublicClient({ baseUrl: publicUrl, apiKey: tenant.serviceKey });
    const minted = await mintKey(tenant.serviceKey, { name: 'client agent', permissions: 'call_only' });
    expect(minted.plaintext_key).toMatch(/^sk_test_/);

    const listed = await unwrap(keys.GET('/v1/keys', { params: { query: { limit: 10 } } }));
    expect(listed.keys.map((k: Key) => k.id)).toContain(minted.id);
    // The SDKs' base: the same paths under /api.
    const viaApi = await unwrap(createPublicClient({ baseUrl: `${publicUrl}/api`, apiKey: tenant.serviceKey }).GET('/v1/keys', { params: { query: { limit: 10 } } }));
    expect(viaApi).toEqual(listed);
    const { key: read } = await unwrap(keys.GET('/v1/keys/{id}', { params: { path: { id: minted.id } } }));
    expect(read).toMatchObject({ id: minted.id, name: 'client agent', permissions: 'call_only', revoked_at: null });
    expect(read).not.toHaveProperty('plaintext_key');

    const { key: successor } = await unwrap(keys.POST('/v1/keys/{id}/rotate', { params: { path: { id: minted.id }, header: idempotency() } }));
    const successorToken = successor.plaintext_key ?? '';
    recordSecrets(successorToken);
    expect(successorToken).toMatch(/^sk_test_/);
    expect(successor.rotated_from).toBe(minted.id);

    const feed = await unwrap(createPublicClient({ baseUrl: publicUrl, apiKey: successorToken }).GET('/v1/audit', { params: { query: { limit: 50 } } }));
    expect(feed.events.length).toBeGreaterThan(0);

    const { key: revoked } = await unwrap(keys.DELETE('/v1/keys/{id}', { params: { path: { id: successor.id } } }));
    expect(revoked.revoked_at).not.toBeNull();
    // The old and the revoked key are refused from now on.
    const { error, response } = await createPublicClient({ baseUrl: publicUrl, apiKey: successorToken }).GET('/v1/audit');
    expect(response.status).toBe(401);
    expect(error?.error.code).toBe('invalid_api_key');
  });

  it('internal client: bootstrap, verify, and a debit made once per request_id', async ({ tenant }) => {
    const boot = await unwrap(internal.POST('/internal/v1/bootstrap', { body: { name: 'client bootstrap' } }));
    recordSecrets(`${boot.service_key}\n${boot.api_key}`);
    expect(boot.service_key).toMatch(/^sk_svc_test_/);

    const key = await mintKey(tenant.serviceKey, { name: 'capped', permissions: 'call_only', monthly_cap_cents: 100 });
    const verify = (body: { verb: 'read' | 'call' | 'sms' | 'admin'; cost_cents?: number; request_id?: string }) =>
      unwrap(internal.POST('/internal/v1/verify', { body: { key: key.plaintext_key, ...body } }));

    const ok: VerifyResult = await verify({ verb: 'call' });
    expect(ok).toMatchObject({ valid: true, code: 'valid', key: { id: key.id, account_id: tenant.accountId } });
    const refused = await verify({ verb: 'sms' });
    expect(refused).toMatchObject({ valid: false, code: 'agent_permission_denied', status: 403, error: { error: { code: 'agent_permission_denied' } } });

    const first = await verify({ verb: 'call', cost_cents: 60, request_id: 'call-1' });
    expect(first.debit).toEqual({ request_id: 'call-1', cost_cents: 60, replayed: false });
    const retry = await verify({ verb: 'call', cost_cents: 60, request_id: 'call-1' });
    expect(retry.debit).toEqual({ request_id: 'call-1', cost_cents: 60, replayed: true });
    const over = await verify({ verb: 'call', cost_cents: 60, request_id: 'call-2' });
    expect(over).toMatchObject({ valid: false, code: 'agent_cap_exceeded', status: 402 });
    expect(over.key?.monthly_spend_cents).toBe(60);

    const reused = await verify({ verb: 'call', cost_cents: 5, request_id: 'call-1' }).catch((e: unknown) => e);
    expect(reused).toBeInstanceOf(KeyplaneError);
    expect(reused).toMatchObject({ status: 409, code: 'idempotency_key_reused' });
  });

  it('errors are typed: status, code, details and request id, thrown by unwrap or returned as `error`', async ({ app: t, tenant }) => {
    const codeOf = async (p: Promise<unknown>): Promise<[number, ErrorCode | 'unexpected_response']> => {
      const err = await p.then(() => null, (e: unknown) => e);
      if (!isKeyplaneError(err)) throw new Error(`expected a KeyplaneError, got ${String(err)}`);
      expect(err.requestId).toBeTruthy();
      return [err.status, err.code];
    };
    const keys = createPublicClient({ baseUrl: publicUrl, apiKey: tenant.serviceKey });
    expect(await codeOf(unwrap(createPublicClient({ baseUrl: publicUrl, apiKey: 'sk_svc_test_nope' }).GET('/v1/keys')))).toEqual([401, 'invalid_api_key']);
    expect(await codeOf(unwrap(keys.GET('/v1/keys/{id}', { params: { path: { id: '00000000-0000-4000-8000-000000000000' } } })))).toEqual([404, 'not_found']);

    const invalid = await keys.POST('/v1/keys', { params: { header: idempotency() }, body: { name: '' } });
    expect(invalid.response.status).toBe(422);
    expect(invalid.error?.error.code).toBe('validation_error');
    expect(invalid.error?.error.details.some((d) => d.field === 'name')).toBe(true);

    const token = await t.services.operatorTokens.create({ name: `client-${Math.random().toString(36).slice(2, 10)}`, scope: 'verify' }, {
      actor: { kind: 'portal', keyId: null, keyPrefix: 'test' },
      meta: NO_REQUEST,
      now: t.clock.now(),
    });
    recordSecrets(token.plaintext_key);
    const verifyOnly = createInternalClient({ baseUrl: adminUrl, operatorToken: token.plaintext_key });
    expect(await codeOf(unwrap(verifyOnly.POST('/internal/v1/accounts', { body: { name: 'nope' } })))).toEqual([403, 'insufficient_scope']);
    const allowed = await unwrap(verifyOnly.POST('/internal/v1/verify', { body: { key: 'sk_test_unknown', verb: 'read' } }));
    expect(allowed).toMatchObject({ valid: false, code: 'invalid_api_key', status: 401 });
  });
});


import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { afterAll, describe, expect, inject } from 'vitest';
import { openDatabase, type Database } from '../../src/db/database.js';
import { complianceEvents, operatorTokens } from '../../src/db/schema.js';
import { NO_REQUEST } from '../../src/domain/audit/events.js';
import { verifyAccountChain } from '../../src/domain/audit/chain.service.js';
import { OPERATOR_ACCOUNT_ID } from '../../src/domain/operator-tokens/operator-tokens.service.js';
import { it } from '../support/fixtures.js';
import { ADMIN_TOKEN, call, createTestApp, errorCode, recordSecrets, testDatabase, type TestApp } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';

/*
 * Operator tokens (issue 27, item 3): named kpo_ tokens of scope admin or verify beside the
 * bootstrap KEYPLANE_ADMIN_TOKEN. The scope of every admin route is also checked by the security
 * matrix, over the routes table.
 */

const cliCtx = (t: TestApp) => ({ actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: NO_REQUEST, now: t.clock.now() });
// Names are unique among live tokens, and on Postgres every test file shares one database.
const unique = (name: string) => `${name}-${Math.random().toString(36).slice(2, 10)}`;

async function mint(t: TestApp, name: string, scope: 'admin' | 'verify') {
  const token = await t.services.operatorTokens.create({ name: unique(name), scope }, cliCtx(t));
  recordSecrets(token.plaintext_key);
  return token;
}

const verifyCall = (t: TestApp, token: string, key = 'sk_test_nothing') => call(t.admin, 'POST', '/internal/v1/verify', { token, body: { key, verb: 'call' } });

async function operatorEvents(t: TestApp, tokenId: string) {
  const rows = await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, OPERATOR_ACCOUNT_ID));
  return rows.filter((r) => (r.data as { operator_token_id?: string }).operator_token_id === tokenId);
}

describe('a leaked operator token', () => {
  it('is revoked by the leak intake, with reason leaked, and stops on the next request', async ({ app: t }) => {
    const token = await mint(t, 'leaked', 'verify');
    expect((await verifyCall(t, token.plaintext_key)).status).toBe(200);
    const leak = (tokens: string[]) => call(t.admin, 'POST', '/internal/v1/keys/revoke-leaked', { token: ADMIN_TOKEN, body: { tokens } });
    const res = await leak([token.plaintext_key, withLastCharChanged(token.plaintext_key)]);
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toEqual({ prefix: token.key_prefix, found: true, revoked: true, key_id: token.id, kind: 'operator_token', account_id: null });
    expect(res.body.results[1]).toEqual({ prefix: token.key_prefix, found: false, revoked: false, key_id: null, kind: null, account_id: null });
    expect(res.raw).not.toContain(token.plaintext_key);
    expect(errorCode(await verifyCall(t, token.plaintext_key))).toBe('invalid_api_key');
    const revoked = (await operatorEvents(t, token.id)).filter((e) => e.eventType === 'operator_token_revoked');
    expect(revoked.map((e) => e.data)).toEqual([expect.objectContaining({ reason: 'leaked', key_prefix: token.key_prefix })]);
    // Idempotent: found again, not revoked again, no second event.
    expect((await leak([token.plaintext_key])).body.results[0]).toMatchObject({ found: true, revoked: false, key_id: token.id });
    expect((await operatorEvents(t, token.id)).filter((e) => e.eventType === 'operator_token_revoked')).toHaveLength(1);
  });
});

describe('operator tokens', () => {
  it('are kpo_ tokens with a checksum, shown once, stored only as a hash', async ({ app: t }) => {
    const token = await mint(t, 'shape', 'verify');
    expect(token.plaintext_key).toMatch(/^kpo_[0-9A-Za-z]{49}$/);
    expect(token.key_prefix).toBe(token.plaintext_key.slice(0, 12));
    expect(token).toMatchObject({ scope: 'verify', revoked_at: null });
    const [stored] = await t.database.db.select().from(operatorTokens).where(eq(operatorTokens.id, token.id));
    expect(JSON.stringify(stored)).not.toContain(token.plaintext_key);
    expect(stored!.tokenHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a verify token verifies, and gets 403 insufficient_scope in the envelope anywhere else', async ({ app: t, tenant }) => {
    const token = (await mint(t, 'data-plane', 'verify')).plaintext_key;
    const ok = await verifyCall(t, token, tenant.apiKey);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ valid: true, code: 'valid' });
    const refused = await call(t.admin, 'POST', '/internal/v1/accounts', { token, body: { name: 'nope' } });
    expect(refused.status).toBe(403);
    expect(errorCode(refused)).toBe('insufficient_scope');
    expect(refused.body.error.message).toMatch(/scope \(verify\)/);
    // The internal OpenAPI document is the admin scope's too.
    expect((await call(t.admin, 'GET', '/internal/openapi.json', { token })).status).toBe(403);
  });

  it('an admin token calls the whole internal API, and its events name it', async ({ app: t }) => {
    const token = await mint(t, 'portal-backend', 'admin');
    const res = await call(t.admin, 'POST', '/internal/v1/accounts', { token: token.plaintext_key, body: { name: 'named' } });
    expect(res.status).toBe(201);
    const [event] = await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, res.body.account.id));
    expect(event).toMatchObject({ eventType: 'account_created', actorKind: 'portal', actorKeyId: token.id, actorKeyPrefix: `operator:${token.name}` });
    expect((await verifyCall(t, token.plaintext_key)).status).toBe(200);
  });

  it('the bootstrap token still works, for every scope, and its events name it bootstrap', async ({ app: t }) => {
    const res = await call(t.admin, 'POST', '/internal/v1/accounts', { token: ADMIN_TOKEN, body: { name: 'boot' } });
    expect(res.status).toBe(201);
    const [event] = await t.database.db.select().from(complianceEvents).where(eq(complianceEvents.accountId, res.body.account.id));
    expect(event).toMatchObject({ actorKind: 'portal', actorKeyId: null, actorKeyPrefix: 'operator:bootstrap' });
    expect((await verifyCall(t, ADMIN_TOKEN)).status).toBe(200);
  });

  it('several live at once; a revoked one stops on the very next request, the others go on', async ({ app: t }) => {
    const [one, two] = [await mint(t, 'deploy-a', 'verify'), await mint(t, 'deploy-b', 'verify')];
    expect((await verifyCall(t, one.plaintext_key)).status).toBe(200);
    expect((await verifyCall(t, two.plaintext_key)).status).toBe(200);
    const revoked = await t.services.operatorTokens.revoke(one.name, cliCtx(t));
    expect(revoked).toMatchObject({ id: one.id, revoked_at: expect.any(String) });
    const after = await verifyCall(t, one.plaintext_key);
    expect(after.status).toBe(401);
    expect(errorCode(after)).toBe('invalid_api_key');
    expect(after.body.error.message).toBe('The operator token is invalid.');
    expect((await verifyCall(t, two.plaintext_key)).status).toBe(200);
    // Revoked once: a second revoke, by id or name, finds nothing live.
    await expect(t.services.operatorTokens.revoke(one.id, cliCtx(t))).rejects.toMatchObject({ code: 'not_found' });
    await expect(t.services.operatorTokens.revoke(one.name, cliCtx(t))).rejects.toMatchObject({ code: 'not_found' });
  });

  it('concurrent requests with named tokens are all answered, and a revocation applies to the next ones', async ({ app: t, tenant }) => {
    const [a, b] = [await mint(t, 'burst-a', 'verify'), await mint(t, 'burst-b', 'admin')];
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => verifyCall(t, (i % 2 ? a : b).plaintext_key, tenant.apiKey)));
    expect(answers.map((r) => r.status)).toEqual(Array(40).fill(200));
    await t.services.operatorTokens.revoke(a.id, cliCtx(t));
    const later = await Promise.all(Array.from({ length: 10 }, (_, i) => verifyCall(t, (i % 2 ? a : b).plaintext_key, tenant.apiKey)));
    expect(later.map((r) => r.status)).toEqual(Array.from({ length: 10 }, (_, i) => (i % 2 ? 401 : 200)));
  });

  it('a token of the wrong shape or checksum, or unknown, is the same 401', async ({ app: t }) => {
    const token = (await mint(t, 'shapes', 'admin')).plaintext_key;
    for (const bad of [withLastCharChanged(token), `${token}x`, token.replace('kpo_', 'kpx_'), `kpo_${'A'.repeat(49)}`]) {
      const res = await verifyCall(t, bad);
      expect(res.status).toBe(401);
      expect(errorCode(res)).toBe('invalid_api_key');
    }
  });

  it('list shows every token, live first, and never a secret or hash', async ({ app: t }) => {
    const live = await mint(t, 'listed', 'admin');
    const gone = await mint(t, 'listed-gone', 'verify');
    await t.services.operatorTokens.revoke(gone.id, cliCtx(t));
    const list = await t.services.operatorTokens.list();
    const text = JSON.stringify(list);
    expect(text).not.toContain(live.plaintext_key);
    expect(text).not.toContain(gone.plaintext_key);
    expect(text).not.toMatch(/kpo_[0-9A-Za-z]{49}|token_hash|[0-9a-f]{64}/);
    for (const entry of list) expect(Object.keys(entry).sort()).toEqual(['created_at', 'id', 'key_prefix', 'name', 'revoked_at', 'scope']);
    const liveAt = list.findIndex((x) => x.id === live.id);
    const goneAt = list.findIndex((x) => x.id === gone.id);
    expect(liveAt).toBeGreaterThanOrEqual(0);
    expect(goneAt).toBeGreaterThan(liveAt);
    expect(list.slice(0, list.findIndex((x) => x.revoked_at !== null)).every((x) => x.revoked_at === null)).toBe(true);
  });

  it('names are plain, never uuid-shaped, and unique among live tokens; a revoked name may be reused', async ({ app: t }) => {
    for (const name of ['', 'has space', '-leading', 'x'.repeat(65), '3f1c8a52-7a0e-4d5b-9c43-2b1d6e0f9a17', 'kpo_secret\n']) {
      await expect(t.services.operatorTokens.create({ name, scope: 'admin' }, cliCtx(t))).rejects.toMatchObject({ code: 'validation_error' });
    }
    const first = await mint(t, 'reused', 'admin');
    await expect(t.services.operatorTokens.create({ name: first.name, scope: 'verify' }, cliCtx(t))).rejects.toMatchObject({
      code: 'validation_error',
      details: [{ field: 'name' }],
    });
    await t.services.operatorTokens.revoke(first.name, cliCtx(t));
    const again = await t.services.operatorTokens.create({ name: first.name, scope: 'verify' }, cliCtx(t));
    recordSecrets(again.plaintext_key);
    expect(again.id).not.toBe(first.id);
  });

  it('create and revoke record events in the operator account, whose chain verifies', async ({ app: t }) => {
    const token = await mint(t, 'audited', 'verify');
    await t.services.operatorTokens.revoke(token.id, cliCtx(t));
    const events = await operatorEvents(t, token.id);
    expect(events.map((e) => e.eventType).sort()).toEqual(['operator_token_created', 'operator_token_revoked']);
    for (const e of events) {
      expect(e.data).toEqual({ operator_token_id: token.id, name: token.name, scope: 'verify', key_prefix: token.key_prefix });
      expect(e.actorKeyPrefix).toBe('test');
      expect(e.seq).not.toBeNull();
    }
    const chain = await verifyAccountChain(t.database.db, OPERATOR_ACCOUNT_ID);
    expect(chain.firstBreak).toBeNull();
    expect(chain.events).toBeGreaterThanOrEqual(2);
  });
});

/*
 * The CLI, a process of its own, on the run's Postgres database or on an embedded data directory
 * that this test opens between commands (an embedded directory has one user at a time).
 */
const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-optok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'silent' };
  delete env.DATABASE_URL;
  delete env.DATA_DIR;
  if (inject('dbMode') === 'postgres') env.DATABASE_URL = inject('databaseUrl');
  else env.DATA_DIR = path.join(tmp, 'data');
  return env;
}

async function cli(args: string[]): Promise<{ code: number; out: any; stderr: string }> {
  const run = promisify(execFile)(process.execPath, [path.resolve('bin/keyplane.js'), ...args, '--json'], { env: cliEnv(), timeout: 120_000 });
  const { code, stdout, stderr } = await run.then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  );
  recordSecrets(stdout);
  return { code, out: JSON.parse(stdout), stderr };
}

/** Runs `fn` against an admin app over the database the CLI writes to. */
async function withCliDatabase(fn: (t: TestApp) => Promise<void>): Promise<void> {
  const embedded = inject('dbMode') !== 'postgres';
  const database: Database = embedded ? await openDatabase({ dataDir: path.join(tmp, 'data') }) : await testDatabase();
  const t = await createTestApp({ database });
  try {
    await fn(t);
  } finally {
    await t.close();
    if (embedded) await database.close();
  }
}

describe('keyplane operator-tokens (CLI)', () => {
  it('create prints the token once, list never shows it, revoke by name stops it', async () => {
    const name = unique('cli-verify');
    const created = await cli(['operator-tokens', 'create', '--name', name, '--scope', 'verify']);
    expect(created.code).toBe(0);
    expect(created.out).toMatchObject({ name, scope: 'verify', revoked_at: null, plaintext_key: expect.stringMatching(/^kpo_/) });
    const token: string = created.out.plaintext_key;

    const listed = await cli(['operator-tokens', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.out.operator_tokens).toContainEqual({ ...created.out, plaintext_key: undefined });
    expect(JSON.stringify(listed.out)).not.toContain(token);

    await withCliDatabase(async (t) => {
      expect((await verifyCall(t, token)).status).toBe(200);
      expect((await call(t.admin, 'GET', `/internal/v1/accounts/${OPERATOR_ACCOUNT_ID}/service-keys`, { token })).status).toBe(403);
      const [event] = (await operatorEvents(t, created.out.id)).filter((e) => e.eventType === 'operator_token_created');
      expect(event).toMatchObject({ actorKind: 'portal', actorKeyPrefix: 'cli' });
    });

    const revoked = await cli(['operator-tokens', 'revoke', name]);
    expect(revoked.code).toBe(0);
    expect(revoked.out).toMatchObject({ id: created.out.id, revoked_at: expect.any(String) });
    expect(JSON.stringify(revoked.out)).not.toContain(token);
    await withCliDatabase(async (t) => {
      expect((await verifyCall(t, token)).status).toBe(401);
      expect((await operatorEvents(t, created.out.id)).map((e) => e.eventType).sort()).toEqual(['operator_token_created', 'operator_token_revoked']);
    });

    const again = await cli(['operator-tokens', 'revoke', name]);
    expect(again.code).toBe(1);
    expect(again.out).toEqual({ error: { code: 'not_found', message: 'not found' } });
    const badScope = await promisify(execFile)(process.execPath, [path.resolve('bin/keyplane.js'), 'operator-tokens', 'create', '--name', 'x', '--scope', 'root'], {
      env: cliEnv(),
      timeout: 120_000,
    }).then(
      () => 0,
      (err: { code: number }) => err.code,
    );
    expect(badScope).toBe(2);
  }, 300_000);
});

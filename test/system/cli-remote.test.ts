import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordLiteralSecret } from '../support/harness.js';
import { withLastCharChanged } from '../support/tokens.js';
import { cli } from './support/cli.js';
import { freePort } from './support/cluster.js';
import { isBanner, serve, type ServeProcess } from './support/serve-process.js';

/*
 * --url mode (issue 31, item 6): beside a running embedded server, which holds its data directory,
 * every command the internal API can serve runs through it with an operator token, and prints what
 * it prints on the database itself. The embedded first run's token is the one the server keeps in
 * DATA_DIR/admin-token, named by its start-up banner (item 7).
 */

const tmp = mkdtempSync(path.join(tmpdir(), 'keyplane-cli-remote-'));
const dataDir = path.join(tmp, 'data');
const NO_SUCH_ID = '00000000-0000-4000-8000-000000000000';
let server: ServeProcess;
let env: Record<string, string>;
let adminUrl: string;
let token: string;

beforeAll(async () => {
  const [port, adminPort] = [await freePort(), await freePort()];
  env = { DATA_DIR: dataDir, PORT: String(port), ADMIN_PORT: String(adminPort) };
  server = serve(env);
  await server.waitFor(isBanner);
  adminUrl = `http://127.0.0.1:${adminPort}`;
  token = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  recordLiteralSecret(token);
  // Only the server: no database for the CLI to fall back to.
  delete process.env.DATABASE_URL;
  delete process.env.DATA_DIR;
  Object.assign(process.env, { KEYPLANE_URL: adminUrl, KEYPLANE_TOKEN: token, LOG_LEVEL: 'silent' });
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const ok = async (args: string[]) => {
  const res = await cli([...args, '--json']);
  expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 0, stderr: '' });
  return res.json();
};

describe('keyplane --url', () => {
  it('the banner names the public, docs and admin URLs and, on a first run, the token file (0600); embedded binds loopback', async () => {
    const banner = await server.waitFor(isBanner);
    expect(banner.publicUrl).toBe(`http://127.0.0.1:${env.PORT}`);
    expect(banner.adminUrl).toBe(adminUrl);
    expect(banner.msg).toContain(`public API http://127.0.0.1:${env.PORT}/v1, docs http://127.0.0.1:${env.PORT}/docs`);
    expect(banner.msg).toContain(`internal API ${adminUrl}/internal/v1`);
    expect(banner.msg).toContain(`first run: operator token in ${path.join(dataDir, 'admin-token')} (mode 0600)`);
    expect(banner.msg).toContain(`keyplane --url ${adminUrl} --token "$(cat ${path.join(dataDir, 'admin-token')})" bootstrap`);
    expect(statSync(path.join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(server.lines)).not.toContain(token);
    const docs = await fetch(`http://127.0.0.1:${env.PORT}/docs`, { redirect: 'manual' });
    expect(docs.status).toBeLessThan(400);
  });

  it('runs the portal, keys and verify commands through the running server', async () => {
    const boot = await ok(['bootstrap']);
    expect(boot).toMatchObject({ environment: 'test', service_key: expect.stringMatching(/^sk_svc_test_/), api_key: expect.stringMatching(/^sk_test_/) });
    const acc = await ok(['accounts', 'create', '--name', 'Remote Co']);
    expect(acc.name).toBe('Remote Co');
    expect(await ok(['accounts', 'set-reuse-reaction', acc.id, 'report'])).toMatchObject({ id: acc.id, reuse_reaction: 'report' });
    const sk = await ok(['service-keys', 'create', '--account', acc.id, '--environment', 'live']);
    expect(sk.plaintext_key).toMatch(/^sk_svc_live_/);
    const listed = await ok(['service-keys', 'list', '--account', acc.id]);
    expect(listed.service_keys.map((k: { id: string }) => k.id)).toEqual([sk.id]);
    expect(JSON.stringify(listed)).not.toContain('plaintext_key');
    const rotated = await ok(['service-keys', 'rotate', sk.id]);
    expect(rotated.rotated_from).toBe(sk.id);
    expect((await ok(['service-keys', 'revoke', rotated.id])).revoked_at).not.toBeNull();
    const ak = await ok(['api-keys', 'create', '--account', acc.id]);
    expect(ak.plaintext_key).toMatch(/^sk_test_/);

    const valid = await ok(['verify', ak.plaintext_key, '--verb', 'read']);
    expect(valid).toMatchObject({ valid: true, code: 'valid', key: { account_id: acc.id } });
    expect((await ok(['api-keys', 'revoke', ak.id])).revoked_at).not.toBeNull();
    const refused = await cli(['verify', ak.plaintext_key, '--verb', 'read', '--json']);
    expect(refused.code).toBe(1);
    expect(refused.json()).toMatchObject({ valid: false, code: 'invalid_api_key' });

    const keys = await ok(['keys', 'list', '--account', boot.account_id, '--limit', '1']);
    expect(keys.keys).toHaveLength(1);
    expect(keys.next_cursor).toEqual(expect.any(String));
    const page2 = await ok(['keys', 'list', '--account', boot.account_id, '--limit', '1', '--cursor', keys.next_cursor]);
    expect(page2.keys[0].id).not.toBe(keys.keys[0].id);
    const all = await ok(['keys', 'list', '--account', boot.account_id, '--kind', 'portal']);
    const portalKey = all.keys[0];
    expect((await ok(['keys', 'show', portalKey.id])).key).toMatchObject({ id: portalKey.id, kind: 'portal' });
    expect(await ok(['keys', 'revoke', portalKey.id])).toMatchObject({ revoked: true });
    const leaked = await ok(['keys', 'revoke-leaked', writeLeaks(`${boot.service_key}\n${withLastCharChanged(boot.service_key)}\n`)]);
    expect(leaked.results.map((r: { found: boolean; revoked: boolean }) => [r.found, r.revoked])).toEqual([
      [true, true],
      [false, false],
    ]);
    // The human output is the same as on the database.
    expect((await cli(['keys', 'list', '--account', boot.account_id])).stdout).toMatch(/service\s+sk_svc_test_\w{8}\s+test\s+revoked/);
  });

  it('takes --url and --token as flags too, before or after the command', async () => {
    const saved = { url: process.env.KEYPLANE_URL, token: process.env.KEYPLANE_TOKEN };
    delete process.env.KEYPLANE_URL;
    delete process.env.KEYPLANE_TOKEN;
    try {
      expect((await cli(['--url', adminUrl, '--token', token, 'accounts', 'create', '--name', 'flags', '--json'])).code).toBe(0);
      expect((await cli(['accounts', 'create', '--name', 'flags2', '--url', adminUrl, '--token', token, '--json'])).code).toBe(0);
      const noToken = await cli(['--url', adminUrl, 'accounts', 'create', '--name', 'x', '--json']);
      expect(noToken.code).toBe(2);
      expect(noToken.json().error).toMatchObject({ code: 'usage_error', message: expect.stringMatching(/KEYPLANE_TOKEN/) });
    } finally {
      Object.assign(process.env, { KEYPLANE_URL: saved.url, KEYPLANE_TOKEN: saved.token });
    }
  });

  it('errors keep their codes: not_found 1, a bad token 1, no route 2, the locked directory and a dead server 4', async () => {
    const missing = await cli(['keys', 'show', NO_SUCH_ID, '--json']);
    expect([missing.code, missing.json()]).toEqual([1, { error: { code: 'not_found', message: 'not found' } }]);
    const badToken = await cli(['--token', withLastCharChanged(token), 'keys', 'show', NO_SUCH_ID, '--json']);
    expect([badToken.code, badToken.json().error.code]).toEqual([1, 'invalid_api_key']);
    const emptyExport = writeLeaks('');
    const noRoute = [
      ['operator-tokens', 'list'],
      ['operator-tokens', 'create', '--name', 'x', '--scope', 'admin'],
      ['audit', 'verify'],
      ['audit', 'export'],
      ['migrate'],
      ['migrate', 'status'],
      ['keys', 'replay-revocations', emptyExport],
    ];
    for (const args of noRoute) {
      const res = await cli([...args, '--json']);
      expect({ args, code: res.code, error: res.json().error.code }).toEqual({ args, code: 2, error: 'not_available_remotely' });
      expect(res.json().error.message).toMatch(/no internal API route/);
    }
    // Backup has a route (backup-online.test.ts); restore replaces the directory the server holds.
    const restore = await cli(['restore', path.join(tmp, 'remote.backup'), '--json']);
    expect([restore.code, restore.json().error.code]).toEqual([2, 'not_available_remotely']);
    expect(restore.json().error.message).toMatch(/stop the server, then restore/);
    // --data-dir asks for the database itself, which the server holds.
    const locked = await cli(['--data-dir', dataDir, 'keys', 'show', NO_SUCH_ID, '--json']);
    expect([locked.code, locked.json().error.code]).toEqual([4, 'data_dir_locked']);
    expect(locked.json().error.message).toContain(`go through it: keyplane --url http://127.0.0.1:<ADMIN_PORT> --token "$(cat ${dataDir}/admin-token)"`);
    const dead = await cli(['--url', `http://127.0.0.1:${await freePort()}`, 'keys', 'show', NO_SUCH_ID, '--json']);
    expect([dead.code, dead.json().error.code]).toEqual([4, 'server_unreachable']);
  });

  it('after a restart the server keeps the same token, and the CLI reads on the database what it wrote through the server', async () => {
    const before = await ok(['accounts', 'create', '--name', 'before restart']);
    expect(await server.stop()).toBe(0);
    const local = await cli(['--data-dir', dataDir, 'keys', 'list', '--account', before.id, '--json']);
    expect(local.code).toBe(0);
    expect(local.json().keys).toEqual([]);
    server = serve(env);
    const banner = await server.waitFor(isBanner);
    expect(banner.msg).not.toContain('first run');
    expect(banner.msg).toContain(`operator token in ${path.join(dataDir, 'admin-token')}`);
    expect(readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim()).toBe(token);
    expect((await ok(['accounts', 'create', '--name', 'after restart'])).name).toBe('after restart');
  }, 120_000);
});

let leakFiles = 0;
function writeLeaks(text: string): string {
  const file = path.join(tmp, `leaks-${++leakFiles}.txt`);
  writeFileSync(file, text);
  return file;
}

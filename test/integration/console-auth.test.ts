import { describe, expect } from 'vitest';
import { CONSOLE_CSP } from '../../src/http/console/console.plugin.js';
import { signIn } from '../support/console.js';
import { recordSecrets } from '../support/harness.js';
import { it } from '../support/fixtures.js';

/*
 * The console's guard: who may sign in, what a session is (a cookie naming a stored hash, idle
 * expiry), and that no state changes without the session's synchronizer token from this origin.
 */

const ctx = (now: Date) => ({ actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now });
const form = (fields: Record<string, string>) => ({ payload: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });

describe('console sign-in and sessions', () => {
  it('an admin token opens a session: HttpOnly SameSite=Strict cookie holding a random id, never the token', async ({ app: t }) => {
    const c = await signIn(t.admin);
    const named = await t.services.operatorTokens.create({ name: 'ops-console', scope: 'admin' }, ctx(t.clock.now()));
    recordSecrets(named.plaintext_key);
    const res = await t.admin.inject({ method: 'POST', url: '/console/sign-in', ...form({ token: named.plaintext_key }) });
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/console/);
    const page = await c.get('/console/accounts');
    expect(page.status).toBe(200);
    expect(page.body).toContain('Signed in as bootstrap');
    const stored = await t.database.db.execute('select id_hash from console_sessions' as never);
    const value = c.cookie.split('=')[1]!;
    expect(JSON.stringify(stored)).not.toContain(value);
  });

  it('a verify-scope token is refused (403) and opens no session; a wrong token is 401', async ({ app: t }) => {
    const verify = await t.services.operatorTokens.create({ name: 'verifier', scope: 'verify' }, ctx(t.clock.now()));
    recordSecrets(verify.plaintext_key);
    const res = await t.admin.inject({ method: 'POST', url: '/console/sign-in', ...form({ token: verify.plaintext_key }) });
    expect(res.statusCode).toBe(403);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.body).toContain('needs scope admin');
    const wrong = await t.admin.inject({ method: 'POST', url: '/console/sign-in', ...form({ token: 'not-a-token' }) });
    expect(wrong.statusCode).toBe(401);
  });

  it('without a session a page redirects to sign-in and a post is 401', async ({ app: t, tenant }) => {
    const page = await t.admin.inject({ method: 'GET', url: `/console/accounts/${tenant.accountId}` });
    expect(page.statusCode).toBe(303);
    expect(page.headers.location).toBe('/console');
    const post = await t.admin.inject({ method: 'POST', url: '/console/accounts', ...form({ name: 'x', _csrf: 'x' }) });
    expect(post.statusCode).toBe(401);
    const forged = await t.admin.inject({ method: 'GET', url: '/console/accounts', headers: { cookie: 'keyplane_console=forged' } });
    expect(forged.statusCode).toBe(303);
  });

  it('a session idle past the timeout is dead; sign-out ends it at once', async ({ app: t }) => {
    const c = await signIn(t.admin);
    t.clock.advance(29 * 60_000);
    expect((await c.get('/console/accounts')).status).toBe(200);
    t.clock.advance(31 * 60_000);
    expect((await c.get('/console/accounts')).status).toBe(303);
    const d = await signIn(t.admin);
    expect((await d.post('/console/sign-out', { _csrf: d.csrf })).status).toBe(303);
    expect((await d.get('/console/accounts')).status).toBe(303);
  });

  it('a session of a named token dies when the token is revoked', async ({ app: t }) => {
    const token = await t.services.operatorTokens.create({ name: 'ops-revoked', scope: 'admin' }, ctx(t.clock.now()));
    recordSecrets(token.plaintext_key);
    const c = await signIn(t.admin, token.plaintext_key);
    expect((await c.get('/console/accounts')).status).toBe(200);
    await t.services.operatorTokens.revoke('ops-revoked', ctx(t.clock.now()));
    expect((await c.get('/console/accounts')).status).toBe(303);
  });

  it('a cross-site form post is refused: no CSRF token, a foreign one, a foreign Origin or Sec-Fetch-Site', async ({ app: t }) => {
    const c = await signIn(t.admin);
    const other = await signIn(t.admin);
    expect((await c.post('/console/accounts', { name: 'no-token' })).status).toBe(403);
    expect((await c.post('/console/accounts', { name: 'foreign', _csrf: other.csrf })).status).toBe(403);
    expect((await c.post('/console/accounts', { name: 'origin', _csrf: c.csrf }, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await c.post('/console/accounts', { name: 'site', _csrf: c.csrf }, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    const signInFromAfar = await t.admin.inject({ method: 'POST', url: '/console/sign-in', payload: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' } });
    expect(signInFromAfar.statusCode).toBe(403);
    const ok = await c.post('/console/accounts', { name: 'made here', _csrf: c.csrf }, { origin: 'http://localhost:80' });
    expect(ok.status).toBe(303);
    const list = await c.get('/console/accounts?q=made%20here');
    expect(list.body).toContain('made here');
    expect(list.body).not.toMatch(/>(no-token|foreign|origin|site)</);
  });

  it('every console answer carries the strict CSP and no-store', async ({ app: t }) => {
    const res = await t.admin.inject({ method: 'GET', url: '/console' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).not.toMatch(/<script>|<style>| style=| on[a-z]+=/);
    const js = await t.admin.inject({ method: 'GET', url: '/console/assets/console.js' });
    expect(js.statusCode).toBe(200);
  });
});

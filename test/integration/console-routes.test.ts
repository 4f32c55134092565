import { gzipSync } from 'node:zlib';
import { describe, expect } from 'vitest';
import { CONSOLE_ROUTES, signIn, type ConsoleRoute } from '../support/console.js';
import { it } from '../support/fixtures.js';

/*
 * The console's route table (test/support/console.ts) against the admin listener: each route
 * exists; without a session a page redirects to sign-in and a post is refused; a post without
 * this session's synchronizer token or from another origin is refused; hostile ids, queries and
 * fields are a 4xx page, never a 500 or a stack.
 */

const fill = (r: ConsoleRoute, id: string, eventId = id) => r.path.replace(':id', id).replace(':eventId', eventId);
const HOSTILE = ['', 'x'.repeat(5000), "' or 1=1 --", '../../etc/passwd', '%00', '<script>alert(1)</script>', '00000000-0000-0000-0000-000000000000', '💥'];

describe('console routes', () => {
  it('the page weight (every script and style a page can load) is under 200 KB gzipped', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    const page = await c.get(`/console/keys/${tenant.serviceKeyId}/activity`);
    const files = [...page.body.matchAll(/(?:src|href)="(\/console\/(?:assets|vendor)\/[^"]+)"/g)].map((m) => m[1]!);
    expect(files.length).toBeGreaterThanOrEqual(5);
    let total = 0;
    for (const f of files) {
      const res = await t.admin.inject({ method: 'GET', url: f });
      expect(res.statusCode, f).toBe(200);
      total += gzipSync(res.rawPayload).length;
    }
    expect(total).toBeLessThan(200 * 1024);
  });

  it('every route in the table is served', async ({ app: t }) => {
    for (const r of CONSOLE_ROUTES) expect(t.admin.hasRoute({ method: r.method, url: r.path }), `${r.method} ${r.path}`).toBe(true);
  });

  it('without a session: pages redirect to sign-in, posts are 401', async ({ app: t, tenant }) => {
    for (const r of CONSOLE_ROUTES.filter((x) => !x.public)) {
      const res = await t.admin.inject({ method: r.method, url: fill(r, tenant.accountId), payload: r.method === 'POST' ? '_csrf=x' : undefined, headers: r.method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {} });
      expect(res.statusCode, `${r.method} ${r.path}`).toBe(r.method === 'GET' ? 303 : 401);
    }
  });

  it('with a session: every post without its CSRF token, or from another origin, is 403 and changes nothing', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    for (const r of CONSOLE_ROUTES.filter((x) => x.method === 'POST' && !x.public)) {
      const noToken = await c.post(fill(r, tenant.serviceKeyId), { children: 'revoke', name: 'x', environment: 'test', tokens: tenant.apiKey });
      expect(noToken.status, `${r.path} without token`).toBe(403);
      const foreign = await c.post(fill(r, tenant.serviceKeyId), { _csrf: c.csrf, children: 'revoke', tokens: tenant.apiKey }, { origin: 'https://attacker.example' });
      expect(foreign.status, `${r.path} cross-site`).toBe(403);
    }
    const page = await c.get(`/console/accounts/${tenant.accountId}`);
    expect(page.body).not.toContain('badge-revoked');
  });

  it('hostile ids, queries and form fields are answered 4xx (or the page), never 500', async ({ app: t, tenant }) => {
    const c = await signIn(t.admin);
    for (const r of CONSOLE_ROUTES.filter((x) => x.path !== '/console/sign-out')) {
      for (const h of HOSTILE) {
        const id = encodeURIComponent(h) || 'x';
        const query = (r.query ?? []).map((q) => `${q}=${encodeURIComponent(h)}`).join('&');
        const url = `${fill(r, r.path.includes(':eventId') ? tenant.accountId : id, id)}${query ? `?${query}` : ''}`;
        const form = Object.fromEntries([...(r.fields ?? []).map((f) => [f, h]), ['_csrf', c.csrf]]);
        const res = r.method === 'GET' ? await c.get(url) : await c.post(url, form);
        expect(res.status, `${r.method} ${url.slice(0, 80)} → ${res.body.slice(0, 200)}`).toBeLessThan(500);
        expect(res.body).not.toMatch(/at .*\.ts:\d+|<script>alert/);
      }
    }
  });
});

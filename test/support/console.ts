import type { FastifyInstance } from 'fastify';
import { ADMIN_TOKEN } from './harness.js';

/*
 * Driving the operator console through inject: sign in, keep the session cookie, read the
 * page's synchronizer token, post forms as a same-origin browser would.
 */

export interface ConsoleClient {
  cookie: string;
  csrf: string;
  get(url: string): Promise<{ status: number; body: string; location?: string }>;
  post(url: string, form: Record<string, string>, headers?: Record<string, string>): Promise<{ status: number; body: string; location?: string }>;
}

export const CSRF_FIELD = /name="_csrf" value="([^"]+)"/;

export async function signIn(admin: FastifyInstance, token = ADMIN_TOKEN): Promise<ConsoleClient> {
  const res = await admin.inject({ method: 'POST', url: '/console/sign-in', payload: new URLSearchParams({ token }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const setCookie = String(res.headers['set-cookie'] ?? '');
  const cookie = setCookie.split(';')[0]!;
  if (res.statusCode !== 303 || !cookie.startsWith('keyplane_console=')) throw new Error(`sign-in failed: ${res.statusCode} ${res.body.slice(0, 200)}`);
  const page = await admin.inject({ method: 'GET', url: '/console/accounts', headers: { cookie } });
  const csrf = CSRF_FIELD.exec(page.body)?.[1] ?? '';
  const answer = (r: { statusCode: number; body: string; headers: Record<string, unknown> }) => ({ status: r.statusCode, body: r.body, location: r.headers.location as string | undefined });
  return {
    cookie,
    csrf,
    get: async (url) => answer(await admin.inject({ method: 'GET', url, headers: { cookie } })),
    post: async (url, form, headers = {}) =>
      answer(
        await admin.inject({
          method: 'POST',
          url,
          payload: new URLSearchParams(form).toString(),
          headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
        }),
      ),
  };
}

/**
 * Every route of the operator console (HTML on the admin listener). They are not in ROUTES (the
 * security matrix and the fuzzer speak the JSON API's bearer tokens and error envelopes); this
 * table drives their own matrix and hostile-input test in test/integration/console-routes.test.ts.
 */
export interface ConsoleRoute {
  method: 'GET' | 'POST';
  path: string;
  /** Open without a session (the sign-in page and form). */
  public?: boolean;
  /** Form fields it reads (besides _csrf). */
  fields?: string[];
  query?: string[];
}

export const CONSOLE_ROUTES: ConsoleRoute[] = [
  { method: 'GET', path: '/console', public: true },
  { method: 'POST', path: '/console/sign-in', public: true, fields: ['token'] },
  { method: 'POST', path: '/console/sign-out' },
  { method: 'GET', path: '/console/accounts', query: ['q'] },
  { method: 'POST', path: '/console/accounts', fields: ['name'] },
  { method: 'GET', path: '/console/accounts/:id' },
  { method: 'POST', path: '/console/accounts/:id/service-keys', fields: ['name', 'environment'] },
  { method: 'POST', path: '/console/accounts/:id/portal-keys', fields: ['name', 'environment'] },
  { method: 'GET', path: '/console/accounts/:id/audit', query: ['type', 'key', 'before'] },
  { method: 'POST', path: '/console/accounts/:id/audit/verify' },
  { method: 'GET', path: '/console/accounts/:id/audit/:eventId' },
  { method: 'GET', path: '/console/accounts/:id/activity', query: ['range'] },
  { method: 'POST', path: '/console/service-keys/:id/rotate' },
  { method: 'POST', path: '/console/service-keys/:id/revoke', fields: ['children'] },
  { method: 'GET', path: '/console/service-keys/:id', query: ['label', 'line', 'permissions', 'status'] },
  { method: 'GET', path: '/console/keys/:id' },
  { method: 'POST', path: '/console/keys/:id/revoke' },
  { method: 'POST', path: '/console/keys/:id/revoke-leaked' },
  { method: 'POST', path: '/console/keys/:id/suspend', fields: ['reason'] },
  { method: 'POST', path: '/console/keys/:id/resume' },
  { method: 'POST', path: '/console/keys/:id/rotate', fields: ['overlap_seconds'] },
  { method: 'GET', path: '/console/keys/:id/activity', query: ['range'] },
  { method: 'GET', path: '/console/leaks' },
  { method: 'POST', path: '/console/leaks', fields: ['tokens'] },
];

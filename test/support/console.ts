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

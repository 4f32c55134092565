import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { CONSOLE_COOKIE, type ConsoleOptions } from './console-common.js';
import { html, layout } from './html.js';

const signInBody = z.object({ token: z.string().max(512) });

function signInPage(message: string | null): string {
  const error = message ? html`<p class="error" role="alert" id="sign-in-error">${message}</p>` : '';
  return layout(
    { title: 'Sign in', csrfToken: null },
    html`${error}<form method="post" action="/console/sign-in" class="card narrow">
  <label for="token">Operator token (scope admin)</label>
  <input id="token" name="token" type="password" autocomplete="off" required autofocus${message ? html` aria-describedby="sign-in-error"` : ''}>
  <button type="submit">Sign in</button>
  <p class="hint">The token is checked once and never stored; the session ends after a period without use or at sign-out.</p>
</form>`,
  );
}

const cookieOptions = (request: FastifyRequest) => ({ path: '/console', httpOnly: true, sameSite: 'strict' as const, secure: request.protocol === 'https' });

/** GET /console, sign-in and sign-out. */
export async function consoleSignInRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/', { config: { consolePublic: true } }, async (request, reply) => {
    const id = request.cookies[CONSOLE_COOKIE];
    if (id && (await opts.sessions.resume(id, opts.clock.now()))) return reply.redirect('/console/accounts', 303);
    return reply.type('text/html; charset=utf-8').send(signInPage(null));
  });

  r.post('/sign-in', { config: { consolePublic: true }, schema: { body: signInBody } }, async (request, reply) => {
    try {
      const opened = await opts.sessions.signIn(request.body.token.trim(), opts.clock.now());
      reply.setCookie(CONSOLE_COOKIE, opened.sessionId, cookieOptions(request));
      request.log.info({ operator: opened.operator.name }, 'console sign-in');
      return reply.redirect('/console/accounts', 303);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'insufficient_scope') return reply.code(403).type('text/html; charset=utf-8').send(signInPage('This token may not use the console: it needs scope admin.'));
      if (code === 'invalid_api_key') return reply.code(401).type('text/html; charset=utf-8').send(signInPage('That token is not a valid operator token.'));
      throw err;
    }
  });

  r.post('/sign-out', async (request, reply) => {
    const id = request.cookies[CONSOLE_COOKIE];
    if (id) await opts.sessions.signOut(id);
    reply.clearCookie(CONSOLE_COOKIE, cookieOptions(request));
    return reply.redirect('/console', 303);
  });

}

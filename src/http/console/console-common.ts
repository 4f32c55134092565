import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Clock } from '../../domain/clock.js';
import type { ConsoleSessions } from '../../domain/console/console-sessions.js';
import type { Services } from '../../domain/services.js';
import { html, layout, type Html } from './html.js';

/** The session cookie: a random id, HttpOnly, SameSite=Strict, path /console. */
export const CONSOLE_COOKIE = 'keyplane_console';

export interface ConsoleOptions {
  services: Services;
  sessions: ConsoleSessions;
  clock: Clock;
}

export function errorPage(reply: FastifyReply, status: number, title: string, message: string, csrfToken: string | null = null): FastifyReply {
  const back = csrfToken ? html`<p><a href="/console/accounts">Back to the accounts</a></p>` : html`<p><a href="/console">Sign in</a></p>`;
  return reply.code(status).type('text/html; charset=utf-8').send(layout({ title, csrfToken }, html`<p class="error" role="alert">${message}</p>${back}`));
}


/** A console page for the signed-in operator. */
export function sendPage(request: FastifyRequest, reply: FastifyReply, title: string, body: Html, status = 200, chart = false): FastifyReply {
  const s = request.consoleSession!;
  return reply.code(status).type('text/html; charset=utf-8').send(layout({ title, csrfToken: s.csrfToken, operatorName: s.operator.name, chart }, body));
}

/** The session's synchronizer token, for the forms of a page. */
export const csrfOf = (request: FastifyRequest): string => request.consoleSession!.csrfToken;

/** A plaintext key shown once, with its copy button. */
export function plaintextOnce(label: string, plaintext: string): Html {
  return html`<section class="card once" aria-labelledby="once-h"><h2 id="once-h">${label}</h2>
<p class="warn"><strong>Copy it now: you will not see this again.</strong> keyplane stores only its hash.</p>
<div class="secret"><code id="plaintext">${plaintext}</code><button type="button" data-copy="plaintext">Copy</button><span class="copied" role="status" aria-live="polite"></span></div></section>`;
}

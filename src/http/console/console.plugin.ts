import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { csrfMatches, type ConsoleSession } from '../../domain/console/console-sessions.js';
import { DomainError } from '../../domain/errors.js';
import { statusOf } from '../plugins/error-status.js';
import { consoleActivityRoutes } from './console-activity.routes.js';
import { consoleAccountRoutes } from './console-accounts.routes.js';
import { consoleAuditRoutes } from './console-audit.routes.js';
import { consoleKeyRoutes, consoleLeakRoutes } from './console-keys.routes.js';
import { consoleSignInRoutes } from './console-sign-in.routes.js';
import { CONSOLE_COOKIE, errorPage, type ConsoleOptions } from './console-common.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A console route open without a session (the sign-in page and form). */
    consolePublic?: boolean;
  }
  interface FastifyRequest {
    /** The console session of a request under /console (console.plugin.ts). */
    consoleSession: ConsoleSession | null;
  }
}

const ASSETS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'assets');
/** uPlot's browser build, served from the installed package (no CDN): /console/vendor/uPlot.iife.min.js. */
const UPLOT = path.dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'));

/**
 * Every response of the console: a CSP that allows only this origin's files (no inline script or
 * style, no framing, forms post only here), no caching (pages can hold a plaintext key shown once),
 * no referrer leaking ids.
 */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Same-origin check for a state change: the Origin (or, without it, Sec-Fetch-Site) must be this site. */
function sameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin !== undefined) return origin === `${request.protocol}://${request.host}`;
  const site = request.headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin';
}

async function admitSession(request: FastifyRequest, reply: FastifyReply, opts: ConsoleOptions): Promise<FastifyReply | undefined> {
  const isWrite = request.method !== 'GET';
  if (isWrite && !sameOrigin(request)) return errorPage(reply, 403, 'Refused', 'A cross-site form post is refused.');
  if (request.routeOptions.config.consolePublic) return undefined;
  const id = request.cookies[CONSOLE_COOKIE];
  const session = id ? await opts.sessions.resume(id, opts.clock.now()) : null;
  if (!session) {
    if (!isWrite) return reply.redirect('/console', 303);
    return errorPage(reply, 401, 'Signed out', 'Your session has ended; sign in again.');
  }
  if (isWrite && !csrfMatches(session, (request.body as Record<string, unknown> | undefined)?._csrf)) {
    return errorPage(reply, 403, 'Refused', 'The form is not from this session (CSRF token missing or wrong); reload the page and try again.', session.csrfToken);
  }
  request.consoleSession = session;
  request.operator = session.operator;
  return undefined;
}

function handleError(this: FastifyInstance, err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const csrf = request.consoleSession?.csrfToken ?? null;
  if (err instanceof DomainError) return errorPage(reply, statusOf(err.code), 'Could not do that', err.message, csrf);
  if (err.validation) return errorPage(reply, 422, 'Could not do that', 'The form has a field missing or out of range.', csrf);
  if (err.statusCode && err.statusCode < 500) return errorPage(reply, err.statusCode, 'Could not do that', 'The request was refused.', csrf);
  request.log.error({ err }, 'console request failed');
  return errorPage(reply, 500, 'Something went wrong', 'The request failed; it is in the server log with its request id.', csrf);
}

/** The operator console under /console on the admin listener (docs/console.md). */
export async function consolePlugin(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  await app.register(cookie);
  await app.register(formbody, { bodyLimit: 64 * 1024 });
  if (!app.hasRequestDecorator('operator')) app.decorateRequest('operator', null);
  app.decorateRequest('consoleSession', null);
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', CONSOLE_CSP);
    reply.header('x-content-type-options', 'nosniff');
    // same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on our own form posts.
    reply.header('referrer-policy', 'same-origin');
    reply.header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => errorPage(reply, 404, 'Not found', 'There is no such page.', request.consoleSession?.csrfToken ?? null));
  await app.register(fastifyStatic, { root: ASSETS, prefix: '/assets/', decorateReply: false, maxAge: 3_600_000 });
  await app.register(fastifyStatic, { root: UPLOT, prefix: '/vendor/', decorateReply: false, maxAge: 3_600_000, allowedPath: (p) => p === '/uPlot.iife.min.js' || p === '/uPlot.min.css' });
  // The options without the plugin's own (prefix): each route file is mounted under this one's prefix.
  const routeOpts: ConsoleOptions = { services: opts.services, sessions: opts.sessions, clock: opts.clock };
  await app.register(async (pages) => {
    pages.addHook('preValidation', (request, reply) => admitSession(request, reply, routeOpts));
    await pages.register(consoleSignInRoutes, routeOpts);
    await pages.register(consoleAccountRoutes, routeOpts);
    await pages.register(consoleKeyRoutes, routeOpts);
    await pages.register(consoleLeakRoutes, routeOpts);
    await pages.register(consoleAuditRoutes, routeOpts);
    await pages.register(consoleActivityRoutes, routeOpts);
  });
}

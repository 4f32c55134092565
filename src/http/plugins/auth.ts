import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { ApiPrincipal, AuthService, Principal, ServicePrincipal, Tier } from '../../domain/auth/auth.service.js';
import { actorOf } from '../../domain/auth/auth.service.js';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import { DomainError } from '../../domain/errors.js';
import type { RequestMeta } from '../../domain/audit/events.js';
import { clientAddress } from './transport.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The credential tier a route requires; routes without it are public (health, docs). */
    auth?: Tier;
    /** The route only looks at the key (a dry-run check): it is no use of it, so last_used_at stays. */
    passive?: boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** "Bearer <token>", scheme case-insensitive, any run of spaces after it (spec §2). */
export function bearerToken(header: string | undefined): string | null | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}

export interface AuthOptions {
  auth: AuthService;
  clock: Clock;
  /** Called once per failed authentication, before the 401 is sent (brute-force damping hooks here). */
  onAuthFailure?: (request: FastifyRequest) => Promise<void> | void;
}

/**
 * Authenticates every route whose config names a tier, in onRequest, before the body is read: an
 * unauthenticated caller learns nothing about validation, and pays for no parsing.
 */
export const authPlugin = fp<AuthOptions>(
  async (app: FastifyInstance, opts) => {
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (request) => {
      const tier = request.routeOptions.config.auth;
      if (!tier) return;
      const token = bearerToken(request.headers.authorization);
      try {
        if (token === undefined) throw new DomainError('unauthorized');
        if (token === null) throw new DomainError('invalid_api_key');
        const readOnly = request.method === 'GET' || request.method === 'HEAD';
        const noteUse = request.routeOptions.config.passive !== true;
        request.principal = await opts.auth.authenticate(token, tier, { readOnly, noteUse, now: opts.clock.now() });
      } catch (err) {
        if (err instanceof DomainError && opts.onAuthFailure) await opts.onAuthFailure(request);
        throw err;
      }
    });
  },
  { name: 'keyplane-auth' },
);

export function servicePrincipal(request: FastifyRequest): ServicePrincipal {
  const p = request.principal;
  if (!p || p.tier !== 'service') throw new DomainError('invalid_api_key');
  return p;
}

export function apiPrincipal(request: FastifyRequest): ApiPrincipal {
  const p = request.principal;
  if (!p || p.tier !== 'api') throw new DomainError('invalid_api_key');
  return p;
}

export function requestMeta(request: FastifyRequest): RequestMeta {
  const ua = request.headers['user-agent'];
  return { requestId: request.id, ip: clientAddress(request), userAgent: typeof ua === 'string' ? ua : null };
}

/** The domain context of an authenticated request. */
export function opContext(request: FastifyRequest, clock: Clock): OpContext {
  const p = request.principal;
  if (!p) throw new DomainError('unauthorized');
  return { actor: actorOf(p), meta: requestMeta(request), now: clock.now() };
}

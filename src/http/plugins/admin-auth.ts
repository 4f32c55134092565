import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DomainError } from '../../domain/errors.js';
import { scopeAllows, type OperatorAuth } from '../../domain/operator-tokens/operator-auth.js';
import type { OperatorPrincipal, OperatorScope } from '../../domain/operator-tokens/operator-tokens.service.js';
import { bearerToken } from './auth.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The operator-token scope an admin-listener route requires; absent means `admin`, so that a
     * new route is closed to `verify` tokens unless it says otherwise.
     */
    scope?: OperatorScope;
  }
  interface FastifyRequest {
    /** Who holds the operator token of a request on the admin listener (admin-auth). */
    operator: OperatorPrincipal | null;
  }
}

type Done = (err?: Error) => void;

function admit(request: FastifyRequest, operator: OperatorPrincipal, done: Done): void {
  request.operator = operator;
  const required = request.routeOptions.config.scope ?? 'admin';
  if (!scopeAllows(operator.scope, required)) {
    return done(new DomainError('insufficient_scope', `This operator token's scope (${operator.scope}) does not allow this route; it needs ${required}.`));
  }
  done();
}

/**
 * Operator tokens guard the whole admin listener: the bootstrap token or a live named token
 * (domain/operator-tokens/operator-auth.ts), then the route's scope. A bad or revoked token is 401
 * as before; a good token of too narrow a scope is 403 insufficient_scope.
 */
export function registerAdminAuth(app: FastifyInstance, auth: OperatorAuth): void {
  if (!app.hasRequestDecorator('operator')) app.decorateRequest('operator', null);
  // A callback hook, not an async one: the bootstrap token is answered without waiting, and this
  // runs on every verify.
  app.addHook('onRequest', (request, _reply, done) => {
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) return done(new DomainError('unauthorized'));
    if (token === null) return done(new DomainError('invalid_api_key', 'The operator token is invalid.'));
    let operator: OperatorPrincipal | Promise<OperatorPrincipal>;
    try {
      operator = auth.authenticate(token);
    } catch (err) {
      return done(err as Error);
    }
    if (operator instanceof Promise) operator.then((p) => admit(request, p, done), done);
    else admit(request, operator, done);
  });
}

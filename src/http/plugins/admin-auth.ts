import { hash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../../domain/errors.js';
import { bearerToken } from './auth.js';

const digest = (s: string) => hash('sha256', s, 'buffer');

/**
 * The operator token guards the whole admin listener. Both sides are hashed to a fixed length first
 * so that timingSafeEqual compares in constant time whatever the caller sends.
 */
export function registerAdminAuth(app: FastifyInstance, adminToken: string): void {
  const expected = digest(adminToken);
  // A callback hook, not an async one: nothing here waits, and this runs on every verify.
  app.addHook('onRequest', (request, _reply, done) => {
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) return done(new DomainError('unauthorized'));
    if (token === null || !timingSafeEqual(digest(token), expected)) return done(new DomainError('invalid_api_key', 'The operator token is invalid.'));
    done();
  });
}

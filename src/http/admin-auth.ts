import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { DomainError } from '../domain/errors.js';
import { bearerToken } from './auth.js';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * The operator token guards the whole admin listener. Both sides are hashed to a fixed length first
 * so that timingSafeEqual compares in constant time whatever the caller sends.
 */
export function registerAdminAuth(app: FastifyInstance, adminToken: string): void {
  const expected = digest(adminToken);
  app.addHook('onRequest', async (request) => {
    const token = bearerToken(request.headers.authorization);
    if (token === undefined) throw new DomainError('unauthorized');
    if (token === null || !timingSafeEqual(digest(token), expected)) throw new DomainError('invalid_api_key', 'The operator token is invalid.');
  });
}

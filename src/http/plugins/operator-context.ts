import type { FastifyRequest } from 'fastify';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import type { Actor } from '../../domain/audit/events.js';
import { DomainError } from '../../domain/errors.js';
import { requestMeta } from './auth.js';

/**
 * Who acts on the internal API: the operator token admin-auth accepted, named in every event it
 * causes. The kind stays 'portal' (what the audit feed has always shown for operator actions); the
 * key id is the token's id (null for the bootstrap token) and the prefix `operator:<token name>`.
 */
function operatorActor(request: FastifyRequest): Actor {
  const op = request.operator;
  if (!op) throw new DomainError('unauthorized');
  return { kind: 'portal', keyId: op.id, keyPrefix: `operator:${op.name}` };
}

/** The domain context of a request on the internal API (portal backend or operator). */
export function operatorContext(request: FastifyRequest, clock: Clock): OpContext {
  return { actor: operatorActor(request), meta: requestMeta(request), now: clock.now() };
}

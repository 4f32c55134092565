import type { FastifyRequest } from 'fastify';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import type { Actor } from '../../domain/audit/events.js';
import { requestMeta } from './auth.js';

/** Who acts on the internal API: the operator whose token admin-auth accepted. */
function operatorActor(_request: FastifyRequest): Actor {
  return { kind: 'portal', keyId: null, keyPrefix: 'portal' };
}

/** The domain context of a request on the internal API (portal backend or operator). */
export function operatorContext(request: FastifyRequest, clock: Clock): OpContext {
  return { actor: operatorActor(request), meta: requestMeta(request), now: clock.now() };
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import type { OperatorKeysService } from '../../domain/operator/operator.service.js';
import { operatorContext } from '../plugins/operator-context.js';
import { idParams } from './portal.schemas.js';
import {
  accountKeysQuery,
  accountKeysResponse,
  getKeyResponse,
  revokeKeyQuery,
  revokeKeyResponse,
  revokeLeakedBody,
  revokeLeakedResponse,
  operatorResumeBody,
  operatorSuspendBody,
  operatorSuspensionResponse,
  operatorRotateBody,
  operatorRotateResponse,
  revokeAsLeakedBody,
} from './operator-keys.schemas.js';

export interface OperatorKeysRoutesOptions {
  operatorKeys: OperatorKeysService;
  clock: Clock;
}

/** The operator's reach over every key (kill switch, leak intake), mounted under /internal/v1. */
export async function operatorKeysRoutes(app: FastifyInstance, opts: OperatorKeysRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { operatorKeys } = opts;
  const ctx = (request: FastifyRequest): OpContext => operatorContext(request, opts.clock);

  r.get(
    '/accounts/:id/keys',
    { schema: { params: idParams, querystring: accountKeysQuery, response: accountKeysResponse } },
    async (request) => operatorKeys.list(request.params.id, request.query),
  );

  r.get('/keys/:id', { schema: { params: idParams, response: getKeyResponse } }, async (request) => ({
    key: await operatorKeys.get(request.params.id),
  }));

  r.delete(
    '/keys/:id',
    { schema: { params: idParams, querystring: revokeKeyQuery, response: revokeKeyResponse } },
    async (request) => operatorKeys.revoke(request.params.id, request.query.children, ctx(request)),
  );

  r.post(
    '/keys/:id/suspend',
    { config: { scope: 'admin' }, schema: { params: idParams, body: operatorSuspendBody, response: operatorSuspensionResponse } },
    async (request) => operatorKeys.setSuspension(request.params.id, { suspend: true, reason: request.body?.reason }, ctx(request)),
  );

  r.post(
    '/keys/:id/resume',
    { config: { scope: 'admin' }, schema: { params: idParams, body: operatorResumeBody, response: operatorSuspensionResponse } },
    async (request) => operatorKeys.setSuspension(request.params.id, { suspend: false }, ctx(request)),
  );

  r.post(
    '/keys/revoke-leaked',
    { schema: { body: revokeLeakedBody, response: revokeLeakedResponse } },
    async (request) => ({ results: await operatorKeys.revokeLeaked(request.body.tokens, ctx(request)) }),
  );

  r.post(
    '/keys/:id/rotate',
    { config: { scope: 'admin' }, schema: { params: idParams, body: operatorRotateBody, response: operatorRotateResponse } },
    async (request, reply) => {
      const out = await operatorKeys.rotate(request.params.id, request.body?.overlap_seconds ?? 0, ctx(request));
      return reply.code(201).send({ key: { ...out.key, plaintext_key: out.plaintext }, rotated: out.old });
    },
  );

  r.post(
    '/keys/:id/revoke-leaked',
    { config: { scope: 'admin' }, schema: { params: idParams, body: revokeAsLeakedBody, response: revokeKeyResponse } },
    async (request) => operatorKeys.revokeAsLeaked(request.params.id, ctx(request)),
  );
}

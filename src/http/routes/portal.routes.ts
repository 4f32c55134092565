import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import type { PortalService } from '../../domain/portal/portal.service.js';
import {
  accountSchema,
  accountSettingsSchema,
  adminErrors,
  adminReadErrors,
  bootstrapBody,
  createAccountBody,
  createPortalKeyBody,
  createServiceKeyBody,
  idParams,
  portalKeySchema,
  serviceKeySchema,
  updateAccountBody,
} from './portal.schemas.js';
import { operatorContext } from '../plugins/operator-context.js';

export interface PortalRoutesOptions {
  portal: PortalService;
  clock: Clock;
}

/** The portal backend's internal API (spec §9), mounted under /internal/v1 on the admin listener. */
export async function portalRoutes(app: FastifyInstance, opts: PortalRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { portal } = opts;
  const ctx = (request: FastifyRequest): OpContext => operatorContext(request, opts.clock);

  r.post(
    '/accounts',
    { schema: { body: createAccountBody, response: { 201: z.object({ account: accountSchema }), ...adminErrors } } },
    async (request, reply) => {
      return reply.code(201).send({ account: await portal.createAccount(request.body.name, ctx(request)) });
    },
  );

  r.patch(
    '/accounts/:id',
    { schema: { params: idParams, body: updateAccountBody, response: { 200: z.object({ account: accountSettingsSchema }), ...adminErrors } } },
    async (request) => ({ account: await portal.setReuseReaction(request.params.id, request.body.reuse_reaction, ctx(request)) }),
  );

  r.post(
    '/accounts/:id/service-keys',
    {
      schema: {
        params: idParams,
        body: createServiceKeyBody.nullish(),
        response: { 201: z.object({ service_key: serviceKeySchema }), ...adminErrors },
      },
    },
    async (request, reply) => {
      const body = createServiceKeyBody.parse(request.body ?? {});
      return reply.code(201).send({ service_key: await portal.createServiceKey({ accountId: request.params.id, ...body }, ctx(request)) });
    },
  );

  r.get(
    '/accounts/:id/service-keys',
    { schema: { params: idParams, response: { 200: z.object({ service_keys: z.array(serviceKeySchema) }), ...adminReadErrors } } },
    async (request) => ({ service_keys: await portal.listServiceKeys(request.params.id) }),
  );

  r.post(
    '/service-keys/:id/rotate',
    { schema: { params: idParams, response: { 201: z.object({ service_key: serviceKeySchema }), ...adminErrors } } },
    async (request, reply) => reply.code(201).send({ service_key: await portal.rotateServiceKey(request.params.id, ctx(request)) }),
  );

  r.delete(
    '/service-keys/:id',
    { schema: { params: idParams, response: { 200: z.object({ service_key: serviceKeySchema }), ...adminErrors } } },
    async (request) => ({ service_key: await portal.revokeServiceKey(request.params.id, ctx(request)) }),
  );

  r.post(
    '/accounts/:id/api-keys',
    {
      schema: {
        params: idParams,
        body: createPortalKeyBody.nullish(),
        response: { 201: z.object({ api_key: portalKeySchema }), ...adminErrors },
      },
    },
    async (request, reply) => {
      const body = createPortalKeyBody.parse(request.body ?? {});
      return reply.code(201).send({ api_key: await portal.createPortalApiKey({ accountId: request.params.id, ...body }, ctx(request)) });
    },
  );

  r.delete(
    '/api-keys/:id',
    { schema: { params: idParams, response: { 200: z.object({ api_key: portalKeySchema }), ...adminErrors } } },
    async (request) => ({ api_key: await portal.revokePortalApiKey(request.params.id, ctx(request)) }),
  );

  r.post(
    '/bootstrap',
    {
      schema: {
        body: bootstrapBody.nullish(),
        response: {
          201: z.object({
            account_id: z.uuid(),
            environment: z.literal('test'),
            service_key: z.string(),
            api_key: z.string(),
          }),
          ...adminErrors,
        },
      },
    },
    async (request, reply) => {
      const body = bootstrapBody.parse(request.body ?? {});
      return reply.code(201).send(await portal.bootstrap(ctx(request), body.name));
    },
  );
}

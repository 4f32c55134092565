import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Clock } from '../../domain/clock.js';
import type { OpContext } from '../../domain/context.js';
import { toKeyObject, toServiceKeyObject } from '../../domain/keys/key-object.js';
import * as portal from '../../domain/portal/portal.service.js';
import type { AccountRow, ApiKeyRow } from '../../db/schema.js';
import type { Db } from '../../db/database.js';
import {
  accountSchema,
  adminErrors,
  adminReadErrors,
  bootstrapBody,
  createAccountBody,
  createPortalKeyBody,
  createServiceKeyBody,
  idParams,
  portalKeySchema,
  serviceKeySchema,
} from './portal.schemas.js';
import { requestMeta } from '../plugins/auth.js';

export interface AdminRoutesOptions {
  db: Db;
  clock: Clock;
}

export const accountView = (a: AccountRow) => ({ id: a.id, name: a.name, created_at: a.createdAt.toISOString() });
export const portalKeyView = (k: ApiKeyRow) => ({ ...toKeyObject(k), account_id: k.accountId });

/** The portal backend's internal API (spec §9), mounted under /internal/v1 on the admin listener. */
export async function adminRoutes(app: FastifyInstance, opts: AdminRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const ctx = (request: FastifyRequest): OpContext => ({
    actor: { kind: 'portal', keyId: null, keyPrefix: 'portal' },
    meta: requestMeta(request),
    now: opts.clock.now(),
  });

  r.post(
    '/accounts',
    { schema: { body: createAccountBody, response: { 201: z.object({ account: accountSchema }), ...adminErrors } } },
    async (request, reply) => {
      const account = await portal.createAccount(opts.db, request.body.name, ctx(request));
      return reply.code(201).send({ account: accountView(account) });
    },
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
      const issued = await portal.createServiceKey(opts.db, { accountId: request.params.id, ...body }, ctx(request));
      return reply.code(201).send({ service_key: { ...toServiceKeyObject(issued.row), plaintext_key: issued.plaintext } });
    },
  );

  r.get(
    '/accounts/:id/service-keys',
    { schema: { params: idParams, response: { 200: z.object({ service_keys: z.array(serviceKeySchema) }), ...adminReadErrors } } },
    async (request) => {
      const rows = await portal.listServiceKeys(opts.db, request.params.id);
      return { service_keys: rows.map(toServiceKeyObject) };
    },
  );

  r.post(
    '/service-keys/:id/rotate',
    { schema: { params: idParams, response: { 201: z.object({ service_key: serviceKeySchema }), ...adminErrors } } },
    async (request, reply) => {
      const issued = await portal.rotateServiceKey(opts.db, request.params.id, ctx(request));
      return reply.code(201).send({ service_key: { ...toServiceKeyObject(issued.row), plaintext_key: issued.plaintext } });
    },
  );

  r.delete(
    '/service-keys/:id',
    { schema: { params: idParams, response: { 200: z.object({ service_key: serviceKeySchema }), ...adminErrors } } },
    async (request) => {
      const row = await portal.revokeServiceKey(opts.db, request.params.id, ctx(request));
      return { service_key: toServiceKeyObject(row) };
    },
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
      const issued = await portal.createPortalApiKey(opts.db, { accountId: request.params.id, ...body }, ctx(request));
      return reply.code(201).send({ api_key: { ...portalKeyView(issued.row), plaintext_key: issued.plaintext } });
    },
  );

  r.delete(
    '/api-keys/:id',
    { schema: { params: idParams, response: { 200: z.object({ api_key: portalKeySchema }), ...adminErrors } } },
    async (request) => {
      const row = await portal.revokePortalApiKey(opts.db, request.params.id, ctx(request));
      return { api_key: portalKeyView(row) };
    },
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
      const b = await portal.bootstrap(opts.db, ctx(request), body.name);
      return reply.code(201).send({
        account_id: b.account.id,
        environment: 'test' as const,
        service_key: b.serviceKey.plaintext,
        api_key: b.apiKey.plaintext,
      });
    },
  );
}

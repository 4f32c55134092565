import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../domain/clock.js';
import { listChildKeys } from '../domain/child-keys.service.js';
import { toKeyObject } from '../domain/key-view.js';
import type { Db } from '../db/client.js';
import { opContext, servicePrincipal } from './auth.js';
import { listKeysQuery, listKeysResponse } from './keys.schemas.js';
import './limits.js';

export interface KeysRoutesOptions {
  db: Db;
  clock: Clock;
}

/** /v1/keys: child keys of the calling service key (spec §4). */
export async function keysRoutes(app: FastifyInstance, opts: KeysRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/keys',
    { config: { auth: 'service', limit: 'keys.list' }, schema: { querystring: listKeysQuery, response: listKeysResponse } },
    async (request) => {
      const principal = servicePrincipal(request);
      const ctx = opContext(request, opts.clock);
      const { rows, total } = await listChildKeys(opts.db, principal, request.query, ctx);
      return { keys: rows.map((row) => toKeyObject(row, ctx.now)), total };
    },
  );
}

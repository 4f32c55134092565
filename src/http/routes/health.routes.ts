import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { errorResponses } from './common.schemas.js';
import { errorBody } from '../plugins/error-handler.js';

const livenessResponse = { 200: z.object({ status: z.literal('ok') }).meta({ id: 'Liveness' }) };
const readinessResponse = {
  200: z.object({ status: z.literal('ready'), database: z.enum(['postgres', 'pglite']) }).meta({ id: 'Readiness' }),
  ...errorResponses([503] as const),
};

/** Liveness (the process answers) and readiness (the database answers), for load balancers. */
export async function healthRoutes(app: FastifyInstance, opts: { database: Database }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get('/healthz', { schema: { response: livenessResponse } }, async () => ({ status: 'ok' as const }));
  r.get('/readyz', { schema: { response: readinessResponse } }, async (request, reply) => {
    try {
      // Bounded: a dead database must make readiness fail quickly, not hang the probe.
      await Promise.race([
        opts.database.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('database ping timed out')), 1_500).unref()),
      ]);
      return { status: 'ready' as const, database: opts.database.kind };
    } catch (err) {
      request.log.warn({ err: { message: (err as Error).message } }, 'readiness check failed');
      reply.header('retry-after', '2');
      return reply.code(503).send(errorBody('service_unavailable'));
    }
  });
}

import type { FastifyInstance } from 'fastify';
import type { Database } from '../db/client.js';
import { errorBody } from './errors.js';

/** Liveness (the process answers) and readiness (the database answers), for load balancers. */
export async function healthRoutes(app: FastifyInstance, opts: { database: Database }): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      // Bounded: a dead database must make readiness fail quickly, not hang the probe.
      await Promise.race([
        opts.database.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('database ping timed out')), 1_500).unref()),
      ]);
      return { status: 'ready', database: opts.database.kind };
    } catch (err) {
      request.log.warn({ err: { message: (err as Error).message } }, 'readiness check failed');
      reply.header('retry-after', '2');
      return reply.code(503).send(errorBody('service_unavailable'));
    }
  });
}

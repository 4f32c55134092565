import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { HealthService } from '../../domain/services.js';
import { errorResponses } from './common.schemas.js';
import { DomainError } from '../../domain/errors.js';
import { UNAVAILABLE_RETRY_AFTER_S } from '../plugins/error-handler.js';

const livenessResponse = { 200: z.object({ status: z.literal('ok') }).meta({ id: 'Liveness' }) };
const readinessResponse = {
  200: z.object({ status: z.literal('ready'), database: z.enum(['postgres', 'pglite']) }).meta({ id: 'Readiness' }),
  ...errorResponses([503] as const),
};

/** Liveness (the process answers) and readiness (the database answers), for load balancers. */
export async function healthRoutes(app: FastifyInstance, opts: { health: HealthService }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  // Load balancers may probe with HEAD; the probes record nothing, so they answer it (app.ts turns it off elsewhere).
  r.get('/healthz', { exposeHeadRoute: true, config: { quietLog: true, shed: false }, schema: { response: livenessResponse } }, async () => ({ status: 'ok' as const }));
  r.get('/readyz', { exposeHeadRoute: true, config: { quietLog: true }, schema: { response: readinessResponse } }, async (request) => {
    try {
      // Bounded: a dead database must make readiness fail quickly, not hang the probe.
      await Promise.race([
        opts.health.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error('database ping timed out')), 1_500).unref()),
      ]);
      return { status: 'ready' as const, database: opts.health.database };
    } catch (err) {
      request.log.warn({ err: { message: (err as Error).message } }, 'readiness check failed');
      throw new DomainError('service_unavailable', undefined, [], { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_S });
    }
  });
}

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Metrics } from '../../domain/metrics/metrics.js';
import { errorResponses } from './common.schemas.js';
import { insufficientScopeError } from './error.schemas.js';

const metricsResponses = {
  200: {
    description: 'The Prometheus text exposition format (docs/operations.md lists the series).',
    content: { 'text/plain': { schema: z.string() } },
  },
  ...errorResponses([401] as const),
  403: insufficientScopeError,
};

/**
 * GET /metrics on the admin listener: Prometheus' text format, for an operator token of scope
 * `metrics` (a scraper's, which can do nothing else) or `admin`. Never shed (load-shed.ts): an
 * overloaded instance's metrics are the ones an operator needs.
 */
export async function metricsRoutes(app: FastifyInstance, opts: { metrics: Metrics }): Promise<void> {
  const { registry } = opts.metrics;
  app.get('/metrics', { config: { scope: 'metrics', shed: false }, schema: { response: metricsResponses } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Clock } from '../../domain/clock.js';
import type { VerifyService } from '../../domain/verify/verify.service.js';
import { verifyAnswer, verifyBody, verifyResponses } from './verify.schemas.js';

export interface VerifyRoutesOptions {
  verify: VerifyService;
  clock: Clock;
}

/**
 * POST /internal/v1/verify on the admin listener: the data plane (a trusted internal caller, holding
 * an operator token; a `verify`-scoped one is all it needs) asks whether an API key may perform a
 * verb, and debits its monthly cap. The answer is always 200 with { valid, code, ... }; a refusal
 * carries the public error envelope and status that the data plane forwards to its own caller. Only
 * a bad request (422), a request_id reused with another cost (409) or an outage (503) are errors of
 * this route itself.
 */
export async function verifyRoutes(app: FastifyInstance, opts: VerifyRoutesOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.post('/verify', { config: { scope: 'verify', quietLog: true }, schema: { body: verifyBody, response: verifyResponses } }, async (request) => {
    const b = request.body;
    const result = await opts.verify.verify(
      { key: b.key, verb: b.verb, lineId: b.line_id ?? null, costCents: b.cost_cents, requestId: b.request_id },
      opts.clock.now(),
    );
    // A refusal is logged at info with its code (request-log.ts); a valid answer at debug.
    if (!result.valid) request.errorCode = result.code;
    return verifyAnswer(result);
  });
}

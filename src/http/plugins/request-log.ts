import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Metrics } from '../../domain/metrics/metrics.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * A route answered so often that its successes are logged at debug, not info (the health
     * probes, verify): at thousands of verifications a second an info line each is most of the log.
     */
    quietLog?: boolean;
  }
  interface FastifyRequest {
    /** The error code the request was answered with, or a verify's refusal code; null on success. */
    errorCode: string | null;
  }
}

/** Which listener an app is, a label of the HTTP series. */
export type Listener = 'public' | 'admin';

/** The label of a request no route matched: the raw URL would give every probe its own series. */
const UNMATCHED = '(unmatched)';

/** Who called, never their secret: the key's public prefix, or an operator token's name. */
function principalOf(request: FastifyRequest): Record<string, string> | undefined {
  const p = request.principal;
  if (p) return { kind: p.tier === 'service' ? 'service_key' : 'api_key', key_prefix: p.keyPrefix };
  const op = request.operator;
  if (op) return { kind: 'operator', name: op.name };
  return undefined;
}

/** The policy of a 429, from the RateLimit-Policy header the limiter set (`"keys.mint";q=60;w=3600`). */
function policyOf(reply: FastifyReply): string {
  const header = reply.getHeader('ratelimit-policy');
  const m = typeof header === 'string' ? /^"([^"]+)"/.exec(header) : null;
  return m ? m[1]! : 'unknown';
}

function countOutcomes(metrics: Metrics, request: FastifyRequest, reply: FastifyReply): void {
  const code = request.errorCode;
  if (code === null) {
    if (reply.getHeader('idempotent-replayed') === 'true') metrics.idempotency('replayed');
    return;
  }
  if (code === 'idempotency_in_progress') metrics.idempotency('in_progress');
  else if (code === 'idempotency_key_reused') metrics.idempotency('reused');
  else if (code === 'rate_limited') metrics.rateLimited(policyOf(reply));
}

/**
 * Fastify's per-request lines off ("incoming request", "request completed", "Route … not found"):
 * registerRequestLog writes the one line instead. A response stream that failed is still logged.
 */
export class RequestLogController extends LogController {
  override incomingRequest(): void {}
  override routeNotFound(): void {}
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error) super.requestCompleted(error, request, reply, metadata);
  }
}

/**
 * One line per request, when its response is sent (Fastify's own two lines, "incoming request" and
 * "request completed", are off): route template, status, time, the principal and, on a failure or
 * a refused verify, the error code. The same hook counts the request in the metrics.
 *
 * Levels: a quiet route's success at debug; a refusal (4xx, a refused verify) at info; a 5xx at
 * warn (the error handler has logged its cause).
 */
export function registerRequestLog(app: FastifyInstance, listener: Listener, metrics: Metrics): void {
  app.decorateRequest('errorCode', null);
  app.addHook('onResponse', (request, reply, done) => {
    const status = reply.statusCode;
    const route = request.routeOptions.url ?? UNMATCHED;
    const ms = reply.elapsedTime;
    metrics.request(request.routeOptions.config, listener, request.method, route, status, ms / 1000);
    countOutcomes(metrics, request, reply);

    const level = status >= 500 ? 'warn' : request.errorCode === null && status < 400 && request.routeOptions.config.quietLog ? 'debug' : 'info';
    if (!(request.log as Logger).isLevelEnabled(level)) return done();
    const line: Record<string, unknown> = { req: request, route, status, ms: Math.round(ms * 1000) / 1000 };
    const principal = principalOf(request);
    if (principal) line.principal = principal;
    if (request.errorCode !== null) line.code = request.errorCode;
    request.log[level](line, 'request completed');
    done();
  });
}

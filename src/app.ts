import cors from '@fastify/cors';
import Fastify, { type FastifyInstance } from 'fastify';
import { validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { driverError, isDatabaseUnavailable } from './db/errors.js';
import type { Clock } from './domain/clock.js';
import { systemClock } from './domain/clock.js';
import { auditRoutes } from './http/routes/audit.routes.js';
import { backupRoutes } from './http/routes/backup.routes.js';
import { operatorKeysRoutes } from './http/routes/operator-keys.routes.js';
import { portalRoutes } from './http/routes/portal.routes.js';
import { registerAdminAuth } from './http/plugins/admin-auth.js';
import { authPlugin } from './http/plugins/auth.js';
import { frameworkErrorHandler, registerErrorHandling } from './http/plugins/error-handler.js';
import type { Services } from './domain/services.js';
import { healthRoutes } from './http/routes/health.routes.js';
import { registerJsonParser } from './http/plugins/json-body.js';
import { keysRoutes } from './http/routes/keys.routes.js';
import { internalOpenapi, publicOpenapi } from './http/openapi/openapi.js';
import type { ExamplesByKind } from './http/openapi/document.js';
import { compiledSerializerCompiler } from './http/plugins/serializer.js';
import { rateLimitPlugin, type RateLimitOptions } from './http/plugins/rate-limit.js';
import { agentsRoutes } from './http/routes/agents.routes.js';
import { agentSelfRoutes } from './http/routes/agent-self.routes.js';
import { delegationRoutes } from './http/routes/delegation.routes.js';
import { genRequestId } from './http/plugins/request-id.js';
import { clientErrorHandler, connectionOptions, proxyTrust } from './http/plugins/transport.js';
import { verifyRoutes } from './http/routes/verify.routes.js';
import { createOperatorAuth } from './domain/operator-tokens/operator-auth.js';
import { consolePlugin } from './http/console/console.plugin.js';
import { registerLoadShedding, type LoadShedOptions } from './http/plugins/load-shed.js';
import { registerRequestLog, RequestLogController, type Listener } from './http/plugins/request-log.js';
import { metricsRoutes } from './http/routes/metrics.routes.js';
import type { Tracing } from './http/plugins/tracing.js';

/** Everything the app needs, built by main.ts, the CLI or a test. buildApp never reads process.env. */
export interface AppDeps {
  /** The domain's services (src/services.ts: createServices); routes never see the database. */
  services: Services;
  logger: Logger;
  clock?: Clock;
  /** Largest accepted body, bytes. */
  bodyLimit?: number;
  /** Time allowed to receive a whole request, headers and body, ms; then 408 and the socket closed. */
  requestTimeoutMs?: number;
  /** Open connections per listener (server.maxConnections); further ones are closed on accept. */
  maxConnections?: number;
  /** Which hops may set X-Forwarded-For: a hop count, the proxies' addresses, or true (every hop). */
  trustProxy?: boolean | number | string[];
  /** Rate limits and their counter store (in-process unless a Redis is given). */
  rateLimit?: RateLimitOptions;
  /** OpenTelemetry spans per request (main.ts starts it when OTEL_EXPORTER_OTLP_ENDPOINT is set). */
  tracing?: Pick<Tracing, 'register'>;
  /** Load shedding on event-loop delay (config LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS); off unless given. */
  loadShed?: LoadShedOptions;
  /** The OpenAPI documents' examples; the committed ones unless given (scripts/openapi.ts records fresh ones). */
  openapiExamples?: ExamplesByKind;
}

export interface AdminDeps extends AppDeps {
  adminToken: string;
  /** The operator console's session idle timeout, ms (CONSOLE_SESSION_IDLE_MINUTES). */
  consoleIdleMs?: number;
}

/** Both paths of spec §1: the docs' /v1 and the SDKs' /api/v1, identical behaviour. */
export const PUBLIC_PREFIXES = ['/v1', '/api/v1'] as const;

function baseInstance(deps: AppDeps, listener: Listener): FastifyInstance {
  const requestTimeout = deps.requestTimeoutMs ?? 15_000;
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger,
    genReqId: genRequestId,
    bodyLimit: deps.bodyLimit ?? 64 * 1024,
    requestTimeout,
    http: connectionOptions(requestTimeout),
    clientErrorHandler,
    trustProxy: proxyTrust(deps.trustProxy),
    // A HEAD of a GET that records a read (a list, the audit feed) would write the event and send
    // nothing; HEAD is served only where a route asks for it (the health probes).
    exposeHeadRoutes: false,
    // Answer 503 to requests that arrive while shutting down, so the load balancer retries elsewhere.
    return503OnClosing: true,
    frameworkErrors: frameworkErrorHandler,
    // One line per request from request-log.ts instead of Fastify's two, with the route and principal.
    logController: new RequestLogController(),
  }) as unknown as FastifyInstance;
  app.server.maxConnections = deps.maxConnections ?? 1024;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(compiledSerializerCompiler);
  registerJsonParser(app);
  const { metrics } = deps.services;
  registerErrorHandling(app, { isUnavailable: isDatabaseUnavailable, describe: driverError, onDatabaseError: metrics.databaseError });
  registerRequestLog(app, listener, metrics);
  deps.tracing?.register(app);
  // When close() starts, Fastify closes idle keep-alive connections, but a connection whose request
  // is still in flight becomes idle only after its response; telling the client to close it then
  // lets shutdown finish promptly instead of waiting out the keep-alive timeout.
  let draining = false;
  app.addHook('preClose', async () => {
    draining = true;
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    // An answer sent before the body was read (a 401 from onRequest) would leave the socket waiting
    // for the rest of a body nobody reads: close it instead.
    if (draining || request.raw.complete === false) reply.header('connection', 'close');
    done(null, payload);
  });
  return app;
}

/** The public API: /v1 and /api/v1, CORS for any origin, health probes. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const clock = deps.clock ?? systemClock;
  const { services } = deps;
  const app = baseInstance(deps, 'public');
  await registerLoadShedding(app, deps.loadShed ?? { maxEventLoopDelayMs: 0 }, () => services.metrics.loadShed('public'));
  if (deps.trustProxy === true) {
    deps.logger.warn('TRUST_PROXY=true: every hop is trusted, so a client can choose its own IP (rate limits, the logged ip); set the hop count or the proxies\' addresses');
  }
  await app.register(publicOpenapi, { examples: deps.openapiExamples?.public }); // first: it documents every route registered after it
  await app.register(cors, {
    origin: '*',
    methods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'RateLimit', 'RateLimit-Policy', 'Idempotent-Replayed', 'X-Request-Id'],
    maxAge: 600,
    // Answer every OPTIONS as a preflight (204), also one without Origin or the request-method
    // header, instead of the plugin's bare-text 400 that carries no error envelope.
    strictPreflight: false,
  });
  await app.register(rateLimitPlugin, { ...deps.rateLimit, clock, metrics: services.metrics });
  await app.register(authPlugin, { auth: services.auth, clock, onAuthFailure: (request) => app.recordAuthFailure(request) });
  await app.register(healthRoutes, { health: services.health });
  for (const prefix of PUBLIC_PREFIXES) {
    await app.register(keysRoutes, { prefix, keys: services.keys, clock });
    await app.register(auditRoutes, { prefix, audit: services.audit, clock });
    await app.register(agentsRoutes, { prefix, agents: services.agents, clock });
    await app.register(agentSelfRoutes, { prefix, agentSelf: services.agentSelf, clock });
    await app.register(delegationRoutes, { prefix, delegation: services.delegation, clock });
  }
  return app;
}

/**
 * The portal's internal API on its own listener (spec §9); no CORS, an operator token required: the
 * bootstrap token (adminToken) or a named one, whose scope each route checks (admin-auth.ts).
 */
export async function buildAdminApp(deps: AdminDeps): Promise<FastifyInstance> {
  const clock = deps.clock ?? systemClock;
  const app = baseInstance(deps, 'admin');
  await registerLoadShedding(app, deps.loadShed ?? { maxEventLoopDelayMs: 0 }, () => deps.services.metrics.loadShed('admin'));
  const operatorAuth = createOperatorAuth(deps.services.operatorTokens, deps.adminToken);
  await app.register(internalOpenapi, { operatorAuth, examples: deps.openapiExamples?.internal });
  await app.register(async (internal) => {
    registerAdminAuth(internal, operatorAuth);
    await internal.register(portalRoutes, { prefix: '/internal/v1', portal: deps.services.portal, clock });
    await internal.register(operatorKeysRoutes, { prefix: '/internal/v1', operatorKeys: deps.services.operatorKeys, clock });
    await internal.register(verifyRoutes, { prefix: '/internal/v1', verify: deps.services.verify, clock });
    await internal.register(metricsRoutes, { metrics: deps.services.metrics });
    await internal.register(backupRoutes, { prefix: '/internal/v1', backup: deps.services.backup, clock });
  });
  await app.register(healthRoutes, { health: deps.services.health });
  // The console has its own guard (a session cookie, not a bearer token): docs/console.md.
  const sessions = deps.services.console.sessions(operatorAuth, deps.consoleIdleMs ?? 30 * 60_000);
  await app.register(consolePlugin, { prefix: '/console', services: deps.services, sessions, clock });
  return app;
}

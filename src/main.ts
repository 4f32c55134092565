import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildAdminApp, buildApp } from './app.js';
import { listenHost, parseConfig, RATE_LIMIT_VARIABLES, type Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { isDatabaseUnavailable } from './db/errors.js';
import { readOrCreateAdminToken, type AdminTokenFile } from './db/pglite/admin-token-file.js';
import { LIMIT_NAMES } from './http/plugins/limits.js';
import { loggerOptions } from './http/plugins/logger.js';
import type { RateLimitOptions } from './http/plugins/rate-limit.js';
import { systemClock } from './domain/clock.js';
import { operatorTokenProblem } from './domain/auth/token-strength.js';
import { linkFailureLogger, startJobs } from './jobs.js';
import { createServices } from './services.js';
import { startTracing } from './http/plugins/tracing.js';
import { createMetrics, type Metrics } from './domain/metrics/metrics.js';

/*
 * The entry: parse the configuration, open the database, create the services, build the apps,
 * listen, and shut down gracefully. `npm start` runs this file; `keyplane serve` calls serveForever.
 */

function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'LOG_FORMAT' | 'KEYPLANE_ADMIN_TOKEN'>): Logger {
  const options = loggerOptions(config.LOG_LEVEL, config.KEYPLANE_ADMIN_TOKEN ? [config.KEYPLANE_ADMIN_TOKEN] : [], config.LOG_FORMAT);
  if (config.LOG_FORMAT === 'json') return pino(options);
  // Loaded only when asked for; synchronous, so lines keep their order with the process's own output.
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return pino(options, pretty({ sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}

/** Opens the configured database: Postgres when DATABASE_URL is set, else embedded PGlite in DATA_DIR. */
export function openConfiguredDatabase(config: Config, metrics?: Metrics): Promise<Database> {
  return openDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATABASE_URL ? undefined : config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
    pooler: config.DATABASE_POOLER,
    onPoolWait: metrics?.poolWait,
  });
}

/** Each policy's RATE_LIMIT_* variable (config.ts: RATE_LIMIT_VARIABLES); REDIS_URL → shared counters. */
export function rateLimitOptions(config: Config): RateLimitOptions {
  const limits: NonNullable<RateLimitOptions['limits']> = {};
  for (const name of LIMIT_NAMES) {
    const rule = config[RATE_LIMIT_VARIABLES[name]];
    if (rule) limits[name] = rule;
  }
  return {
    limits,
    authFailures: config.RATE_LIMIT_AUTH_FAILURES,
    selfRotateFailures: config.RATE_LIMIT_AGENTS_SELF_ROTATE_FAILURES,
    redis: config.REDIS_URL
      ? {
          url: config.REDIS_URL,
          keyPrefix: config.REDIS_KEY_PREFIX,
          connectTimeoutMs: config.REDIS_CONNECT_TIMEOUT_MS,
          commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        }
      : undefined,
  };
}

export interface RunningServer {
  app: FastifyInstance;
  admin?: FastifyInstance;
  database: Database;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Opens the database and migrates it, retrying while it is unreachable (a Postgres starting beside
 * keyplane): DATABASE_CONNECT_ATTEMPTS tries, waits doubling from DATABASE_CONNECT_BACKOFF_MS up to
 * 10 s, each logged. Any other failure (a refused password, an unknown migration) ends at once.
 */
export async function openAndMigrate(config: Config, logger: Logger, metrics?: Metrics): Promise<Database> {
  for (let attempt = 1; ; attempt++) {
    const database = await openConfiguredDatabase(config, metrics);
    try {
      await database.migrate(logger);
      if (attempt > 1) logger.info({ attempt }, 'database reachable');
      return database;
    } catch (err) {
      await database.close().catch(() => {});
      if (!isDatabaseUnavailable(err)) throw err;
      const reason = (err as { code?: string; message?: string }).code ?? (err as Error).message;
      if (attempt >= config.DATABASE_CONNECT_ATTEMPTS) {
        logger.error({ attempts: attempt, reason }, 'database unreachable, giving up');
        throw err;
      }
      const retryInMs = Math.min(config.DATABASE_CONNECT_BACKOFF_MS * 2 ** (attempt - 1), 10_000);
      logger.warn({ attempt, attempts: config.DATABASE_CONNECT_ATTEMPTS, retryInMs, reason }, 'database unreachable, retrying');
      await sleep(retryInMs);
    }
  }
}

/**
 * The admin listener's bootstrap token: KEYPLANE_ADMIN_TOKEN, or in embedded mode the one kept in
 * DATA_DIR/admin-token (made on the first start), so an embedded first run has a way in.
 */
function adminTokenOf(config: Config): { token?: string; file?: AdminTokenFile } {
  if (config.KEYPLANE_ADMIN_TOKEN) return { token: config.KEYPLANE_ADMIN_TOKEN };
  if (config.DATABASE_URL) return {};
  const file = readOrCreateAdminToken(config.DATA_DIR);
  // A file edited by hand meets the rule KEYPLANE_ADMIN_TOKEN meets.
  const problem = operatorTokenProblem(file.token);
  if (problem) throw new Error(`invalid configuration: the operator token in ${file.path} ${problem}; delete the file to have a new one made at the next start`);
  return { token: file.token, file };
}

const urlOf = (host: string, port: number) => `http://${host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host}:${port}`;

/** What an operator needs after start: where each listener is and, on an embedded first run, how to get in. */
function logBanner(logger: Logger, config: Config, app: FastifyInstance, admin: FastifyInstance | undefined, file?: AdminTokenFile): void {
  const publicUrl = urlOf(listenHost(config), (app.server.address() as { port: number }).port);
  const adminUrl = admin ? urlOf(config.ADMIN_HOST, (admin.server.address() as { port: number }).port) : null;
  const lines = [`keyplane ready: public API ${publicUrl}/v1, docs ${publicUrl}/docs`];
  lines.push(adminUrl ? `  internal API ${adminUrl}/internal/v1 (operator token required)` : '  internal API off: set KEYPLANE_ADMIN_TOKEN to start it');
  if (file) {
    const cli = `keyplane --url ${adminUrl} --token "$(cat ${file.path})"`;
    lines.push(`  ${file.created ? 'first run: ' : ''}operator token in ${file.path} (mode 0600); credentials: ${cli} bootstrap`);
  }
  logger.info(
    { database: config.DATABASE_URL ? 'postgres' : 'pglite', dataDir: config.DATABASE_URL ? undefined : path.resolve(config.DATA_DIR), publicUrl, adminUrl, adminTokenFile: file?.path },
    lines.join('\n'),
  );
}

/** open db → migrate → create services → build apps → listen. Shared by `npm start`, `keyplane serve` and tests. */
export async function startServer(config: Config, logger: Logger = createLogger(config)): Promise<RunningServer> {
  // Before the database: a bad token file stops the start with nothing opened.
  const adminToken = adminTokenOf(config);
  // Before the database, whose pools report their waits to it.
  const metrics = createMetrics({ defaultMetrics: true });
  const database = await openAndMigrate(config, logger, metrics);
  // Loaded only when configured: without it no OpenTelemetry package is imported.
  const tracing = config.OTEL_EXPORTER_OTLP_ENDPOINT ? await startTracing({ endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT }) : undefined;
  const services = createServices(database, {
    idempotencyLockTimeoutMs: config.IDEMPOTENCY_LOCK_TIMEOUT_MS,
    onLinkFailure: linkFailureLogger(logger),
    metrics,
  });
  const deps = {
    services,
    logger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    maxConnections: config.MAX_CONNECTIONS,
    trustProxy: config.TRUST_PROXY,
    loadShed: { maxEventLoopDelayMs: config.LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS },
    tracing,
  };
  const app = await buildApp({ ...deps, rateLimit: rateLimitOptions(config) });
  const admin = adminToken.token
    ? await buildAdminApp({ ...deps, adminToken: adminToken.token, consoleIdleMs: config.CONSOLE_SESSION_IDLE_MINUTES * 60_000 })
    : undefined;
  await app.listen({ host: listenHost(config), port: config.PORT });
  if (admin) await admin.listen({ host: config.ADMIN_HOST, port: config.ADMIN_PORT });
  const stopJobs = startJobs(services.maintenance, systemClock, logger, undefined, config.VERIFY_ACTIVITY_FLUSH_MS);
  logBanner(logger, config, app, admin, adminToken.file);
  let closed = false;
  return {
    app,
    admin,
    database,
    async close() {
      if (closed) return;
      closed = true;
      stopJobs();
      // Stop accepting, let in-flight requests finish, then release the database.
      const started = Date.now();
      await Promise.all([app.close(), admin?.close()]);
      // The last counts of a clean shutdown are written, not lost (telemetry: a failure is only logged).
      await services.maintenance.flushActivity().catch((err: unknown) => logger.warn({ err }, 'writing the last verification counts failed'));
      await database.close();
      await tracing?.shutdown().catch((err: Error) => logger.warn({ err: { message: err.message } }, 'flushing traces failed'));
      logger.info({ ms: Date.now() - started }, 'closed');
    },
  };
}

/** Runs until SIGTERM/SIGINT, then shuts down gracefully within SHUTDOWN_GRACE_MS. */
export async function serveForever(config: Config): Promise<void> {
  const logger = createLogger(config);
  const server = await startServer(config, logger);
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'shutting down after an error');
    else logger.info({ signal }, 'shutting down');
    await server.close();
  });
}

/** Whether this module is the program (`node --import tsx src/main.ts`), not imported by the CLI or a test. */
const isEntry = () => !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));

if (isEntry()) {
  try {
    await serveForever(parseConfig(process.env));
  } catch (err) {
    process.stderr.write(`keyplane: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

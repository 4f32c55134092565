import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { buildAdminApp, buildApp } from './app.js';
import { parseConfig, RATE_LIMIT_VARIABLES, type Config } from './config.js';
import { openDatabase, type Database } from './db/database.js';
import { LIMIT_NAMES } from './http/plugins/limits.js';
import { loggerOptions } from './http/plugins/logger.js';
import type { RateLimitOptions } from './http/plugins/rate-limit.js';
import { systemClock } from './domain/clock.js';
import { linkFailureLogger, startJobs } from './jobs.js';
import { createServices } from './services.js';

/*
 * The entry: parse the configuration, open the database, create the services, build the apps,
 * listen, and shut down gracefully. `npm start` runs this file; `keyplane serve` calls serveForever.
 */

function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'KEYPLANE_ADMIN_TOKEN'>): Logger {
  return pino(loggerOptions(config.LOG_LEVEL, config.KEYPLANE_ADMIN_TOKEN ? [config.KEYPLANE_ADMIN_TOKEN] : []));
}

/** Opens the configured database: Postgres when DATABASE_URL is set, else embedded PGlite in DATA_DIR. */
export function openConfiguredDatabase(config: Config): Promise<Database> {
  return openDatabase({
    databaseUrl: config.DATABASE_URL,
    dataDir: config.DATABASE_URL ? undefined : config.DATA_DIR,
    poolMax: config.DATABASE_POOL_MAX,
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

/** open db → migrate → create services → build apps → listen. Shared by `npm start`, `keyplane serve` and tests. */
export async function startServer(config: Config, logger: Logger = createLogger(config)): Promise<RunningServer> {
  const database = await openConfiguredDatabase(config);
  try {
    await database.migrate(logger);
  } catch (err) {
    await database.close();
    throw err;
  }
  const services = createServices(database, {
    idempotencyLockTimeoutMs: config.IDEMPOTENCY_LOCK_TIMEOUT_MS,
    onLinkFailure: linkFailureLogger(logger),
  });
  const deps = {
    services,
    logger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
    maxConnections: config.MAX_CONNECTIONS,
    trustProxy: config.TRUST_PROXY,
  };
  const app = await buildApp({ ...deps, rateLimit: rateLimitOptions(config) });
  const admin = config.KEYPLANE_ADMIN_TOKEN ? await buildAdminApp({ ...deps, adminToken: config.KEYPLANE_ADMIN_TOKEN, consoleIdleMs: config.CONSOLE_SESSION_IDLE_MINUTES * 60_000 }) : undefined;
  await app.listen({ host: config.HOST, port: config.PORT });
  if (admin) await admin.listen({ host: config.ADMIN_HOST, port: config.ADMIN_PORT });
  else logger.info('KEYPLANE_ADMIN_TOKEN is not set: the internal admin API is not started');
  const stopJobs = startJobs(services.maintenance, systemClock, logger, undefined, config.VERIFY_ACTIVITY_FLUSH_MS);
  logger.info({ database: database.kind, port: config.PORT }, 'keyplane ready');
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

import { isIP } from 'node:net';
import { z } from 'zod';
import type { LimitName } from './http/plugins/limits.js';
import { operatorTokenProblem } from './domain/auth/token-strength.js';

/**
 * The whole configuration, parsed once from the environment in main.ts / the CLI and passed down.
 * Nothing below this file reads process.env. No secret has a default: the admin listener only
 * starts when KEYPLANE_ADMIN_TOKEN is set.
 */
const port = z.coerce.number().int().min(0).max(65535);
/** A rate limit as `max/window-seconds`, e.g. `60/3600` = 60 requests per hour. */
const rateRule = z
  .string()
  .regex(/^\d+\/\d+$/, 'must be <max>/<window seconds>, e.g. 60/3600')
  .transform((v) => {
    const [max, windowSeconds] = v.split('/').map(Number) as [number, number];
    return { max, windowSeconds };
  })
  .refine((r) => r.max >= 1 && r.windowSeconds >= 1, 'max and window must both be at least 1');

/** proxy-addr's named ranges, accepted in a TRUST_PROXY list beside addresses and CIDRs. */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);
const isProxyEntry = (entry: string): boolean => {
  if (PROXY_RANGES.has(entry)) return true;
  const [address = '', bits, ...rest] = entry.split('/');
  if (rest.length > 0 || isIP(address) === 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (isIP(address) === 4 ? 32 : 128));
};
/**
 * Which hops may set X-Forwarded-For: `false`/`0` none, a hop count (`1` = the one load balancer in
 * front), a comma-separated list of trusted addresses, CIDRs or proxy-addr ranges, or `true` (every
 * hop: the client then picks its own IP, so main.ts warns at start). Unlike the other switches `1`
 * is a count here, never `true`: read as `true` it let a client spoof its rate-limit bucket.
 */
const trustProxy = z
  .string()
  .trim()
  .transform((v, ctx): boolean | number | string[] => {
    if (v === 'true' || v === 'false') return v === 'true';
    if (/^\d+$/.test(v)) return Number(v);
    const entries = v.split(',').map((e) => e.trim());
    if (entries.length > 0 && entries.every(isProxyEntry)) return entries;
    ctx.addIssue({ code: 'custom', message: 'must be false, true, a hop count, or a comma-separated list of proxy addresses or CIDRs' });
    return z.NEVER;
  });

export const configSchema = z.object({
  /**
   * Unset: 127.0.0.1 in embedded mode (a first run on a laptop is not on the network), 0.0.0.0 in
   * server mode (a container's port is published by its runtime). listenHost() resolves it.
   */
  HOST: z.string().min(1).optional(),
  PORT: port.default(8080),
  ADMIN_HOST: z.string().default('127.0.0.1'),
  ADMIN_PORT: port.default(8081),
  /** Operator token for the internal API: random enough that it cannot be guessed (domain/auth/token-strength.ts). */
  KEYPLANE_ADMIN_TOKEN: z
    .string()
    .superRefine((token, ctx) => {
      const problem = operatorTokenProblem(token);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** A Postgres connection URL; without its scheme pg would read `host:5432/db` as a socket path. */
  DATABASE_URL: z
    .string()
    .url()
    .refine((v) => /^postgres(ql)?:\/\//i.test(v), 'must start with postgres:// or postgresql://')
    .optional(),
  /**
   * Attempts at the first database connection at start (1 = no retry), the wait doubling from
   * DATABASE_CONNECT_BACKOFF_MS up to 10 s: 8 attempts ride out ~30 s of a Postgres starting beside
   * keyplane (compose, a failover), then the process exits instead of waiting for ever.
   */
  DATABASE_CONNECT_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8),
  DATABASE_CONNECT_BACKOFF_MS: z.coerce.number().int().min(10).max(60_000).default(500),
  DATA_DIR: z.string().default('./data'),
  /** pg pool size per process. 10 matches pg's default and Postgres' default 100 connections for ~8 instances. */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /**
   * `transaction` when DATABASE_URL points at a pooler in transaction mode (PgBouncer): no named
   * prepared statements and no startup parameters, whose settings migrate stores on the role instead.
   */
  DATABASE_POOLER: z.enum(['none', 'transaction']).default('none'),
  REDIS_URL: z.string().url().optional(),
  /** Every counter key starts with this, so several deployments (or test runs) can share one Redis. */
  REDIS_KEY_PREFIX: z.string().min(1).default('keyplane:rl:'),
  /** A Redis that does not accept a connection within 500 ms is treated as down (limits fall back per instance). */
  REDIS_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(10).default(500),
  /**
   * One counter update takes well under 1 ms on a healthy Redis. 250 ms is far past that, and leaves
   * room for this process's own event loop being busy (a late timer would otherwise fire before the
   * answer is read and needlessly switch to per-instance counting).
   */
  REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(5).default(250),
  /*
   * Rate limits (spec §4, §6, §7), one entry per route, as <max>/<window seconds>. Unset = the
   * contract's value (POLICIES in src/http/plugins/rate-limit.ts); raise them for benchmarks.
   * Counted per service key per route for /v1/keys, per API key for /v1/audit, per agent (its
   * rotation chain) for self-rotation attempts whose key and secret match. RATE_LIMIT_VARIABLES
   * below names the policy of each.
   */
  RATE_LIMIT_KEYS_MINT: rateRule.optional(),
  RATE_LIMIT_KEYS_LIST: rateRule.optional(),
  RATE_LIMIT_KEYS_GET: rateRule.optional(),
  RATE_LIMIT_KEYS_UPDATE: rateRule.optional(),
  RATE_LIMIT_KEYS_REVOKE: rateRule.optional(),
  RATE_LIMIT_KEYS_ROTATE: rateRule.optional(),
  RATE_LIMIT_AUDIT_READ: rateRule.optional(),
  RATE_LIMIT_AGENTS_SELF_ROTATE: rateRule.optional(),
  RATE_LIMIT_AGENTS_SELF_READ: rateRule.optional(),
  RATE_LIMIT_AGENTS_SELF_CHECK: rateRule.optional(),
  RATE_LIMIT_AGENTS_DELEGATE: rateRule.optional(),
  RATE_LIMIT_AGENTS_DELEGATED_KEYS: rateRule.optional(),
  /**
   * Failed self-rotations (bad key, wrong secret) per client address, an IPv6 client by its /64.
   * 10 per 15 minutes lets a fleet behind one NAT survive a few misconfigured agents while keeping
   * online guessing of rotation secrets pointless. Unset = 10/900.
   */
  RATE_LIMIT_AGENTS_SELF_ROTATE_FAILURES: rateRule.optional(),
  /**
   * Brute-force damping: failed authentications (401s) per client IP. 60 a minute is far above what
   * a misconfigured but honest client produces, and makes online guessing pointless. Unset = 60/60.
   */
  RATE_LIMIT_AUTH_FAILURES: rateRule.optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** json for production and log pipelines; pretty (pino-pretty) for reading a terminal in development. */
  LOG_FORMAT: z.enum(['json', 'pretty']).default('json'),
  /**
   * Load shedding: while the event loop's mean delay exceeds this many ms, new requests are answered
   * 503 (liveness and /metrics excepted). 1000 ms: a loop that far behind already answers every
   * client late, so refusing fast lets the load balancer retry elsewhere; 0 turns shedding off.
   */
  LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  /**
   * OpenTelemetry tracing: spans are exported over OTLP/HTTP to this URL (e.g.
   * http://collector:4318); unset = no tracing, and its packages are never loaded.
   */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.string().url().optional(),
  /** Behind a load balancer: the number of proxy hops, or the proxies' addresses, so req.ip is the client's. */
  TRUST_PROXY: trustProxy.default(false),
  /** 64 KiB: the largest legitimate body (a mint) is under 1 KiB; anything bigger is abuse. */
  BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024),
  /** A request (headers and body) not received within 15 s is answered 408 and its socket closed. */
  REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).default(15_000),
  /**
   * Open connections per listener; further ones are closed on accept. 1024 stays under the usual
   * 4096 file descriptors with room for the database pool, Redis and both listeners.
   */
  MAX_CONNECTIONS: z.coerce.number().int().min(1).max(1_000_000).default(1024),
  /**
   * How long an Idempotency-Key claim whose request never finished (its process died) blocks retries
   * with 409 idempotency_in_progress before the next retry takes it over. Unset = 15 s
   * (LOCK_TIMEOUT_MS). Lower it only where requests are known to be short, e.g. the crash tests.
   */
  IDEMPOTENCY_LOCK_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).optional(),
  /** How long graceful shutdown waits for in-flight requests before exiting anyway. */
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /** The operator console's session ends after this many minutes without a request (at most a day). */
  CONSOLE_SESSION_IDLE_MINUTES: z.coerce.number().int().min(1).max(1440).default(30),
  /** How often each instance writes its in-memory verification counts; a crash loses at most this much of them. */
  VERIFY_ACTIVITY_FLUSH_MS: z.coerce.number().int().min(200).max(60_000).default(5_000),
});

export type Config = z.infer<typeof configSchema>;

/** The variable that overrides each rate-limit policy (docs/operations.md lists them under these names). */
export const RATE_LIMIT_VARIABLES = {
  'keys.mint': 'RATE_LIMIT_KEYS_MINT',
  'keys.list': 'RATE_LIMIT_KEYS_LIST',
  'keys.get': 'RATE_LIMIT_KEYS_GET',
  'keys.update': 'RATE_LIMIT_KEYS_UPDATE',
  'keys.revoke': 'RATE_LIMIT_KEYS_REVOKE',
  'keys.rotate': 'RATE_LIMIT_KEYS_ROTATE',
  'audit.read': 'RATE_LIMIT_AUDIT_READ',
  'agents.self_rotate': 'RATE_LIMIT_AGENTS_SELF_ROTATE',
  'agents.self_read': 'RATE_LIMIT_AGENTS_SELF_READ',
  'agents.self_check': 'RATE_LIMIT_AGENTS_SELF_CHECK',
  'agents.delegate': 'RATE_LIMIT_AGENTS_DELEGATE',
  'agents.delegated_keys': 'RATE_LIMIT_AGENTS_DELEGATED_KEYS',
} as const satisfies Record<LimitName, keyof Config>;

/** The address the public listener binds: HOST, else loopback in embedded mode and every interface in server mode. */
export const listenHost = (config: Pick<Config, 'HOST' | 'DATABASE_URL'>): string => config.HOST ?? (config.DATABASE_URL ? '0.0.0.0' : '127.0.0.1');

export function parseConfig(env: NodeJS.ProcessEnv): Config {
  const result = configSchema.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

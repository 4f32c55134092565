import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { CounterFamily, HistogramFamily, type CounterSeries, type HistogramSeries } from './series.js';

/*
 * The process's Prometheus series, one registry per createMetrics() (no module-global state: two
 * apps in one test process each count their own). Served on the admin listener at GET /metrics
 * (docs/operations.md, "Metrics", lists every series).
 *
 * Hot-path cost: the series a request touches (HTTP, verify, batches, pool waits) are plain numbers
 * (series.ts), each label set bound once (per verify code, per statement, per route and status on
 * first use), so counting is a property add. Rare events (429s, replays, errors) use prom-client's
 * counters. Pool, linker and rate-limit-store gauges are read only when scraped.
 */

/** Latency buckets, seconds: a verify answers in about a millisecond, a mint (argon2) in tens. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Batch sizes of the group-commit statements: powers of two up to their largest batch (256). */
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
/** A scrape never waits longer than this for the count of unlinked events (a slow or dead database). */
const SCRAPE_QUERY_TIMEOUT_MS = 1_000;

export const VERIFY_CODES = ['valid', 'invalid_api_key', 'agent_permission_denied', 'agent_scope_error', 'agent_cap_exceeded'] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];
/** The group-commit statements (db/group-commit.ts): verify's key reads and the debits. */
export const BATCH_STATEMENTS = ['verify_key_read', 'debit'] as const;
export type BatchStatement = (typeof BATCH_STATEMENTS)[number];
export const IDEMPOTENCY_OUTCOMES = ['replayed', 'in_progress', 'reused'] as const;
export type IdempotencyOutcome = (typeof IDEMPOTENCY_OUTCOMES)[number];

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/** Where the scrape-time gauges read from; set by whoever owns the thing (services.ts, the rate-limit plugin). */
export interface ScrapeSources {
  /** The database pools by name (`main`, `linker`); absent in embedded mode, which has no pool. */
  pools?: Record<string, () => PoolStats>;
  /** Events committed but not yet linked into their chain, all accounts. */
  eventsWaitingLink?: () => Promise<number>;
  /** The rate-limit counter store: whether it is shared (Redis) and whether it fell back to this process. */
  rateLimitStore?: () => { shared: boolean; fallback: boolean };
}

/** One route's counters, bound on its first response with each status. */
interface RouteSeries {
  statuses: Map<number, CounterSeries>;
  latency: HistogramSeries;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function scrapeGauges(registry: Registry, sources: ScrapeSources) {
  new Gauge({
    name: 'keyplane_db_pool_connections',
    help: 'Database pool connections by pool and state (total open, idle), read at scrape time',
    labelNames: ['pool', 'state'],
    registers: [registry],
    collect() {
      for (const [pool, stats] of Object.entries(sources.pools ?? {})) {
        const s = stats();
        this.set({ pool, state: 'total' }, s.total);
        this.set({ pool, state: 'idle' }, s.idle);
      }
    },
  });
  new Gauge({
    name: 'keyplane_db_pool_waiting_requests',
    help: 'Queries waiting for a free pool connection, by pool, read at scrape time',
    labelNames: ['pool'],
    registers: [registry],
    collect() {
      for (const [pool, stats] of Object.entries(sources.pools ?? {})) this.set({ pool }, stats().waiting);
    },
  });
  new Gauge({
    name: 'keyplane_audit_events_waiting_link',
    help: 'Compliance events committed but not yet linked into their chain (one indexed count at scrape time)',
    registers: [registry],
    async collect() {
      if (!sources.eventsWaitingLink) return;
      // A database that does not answer makes the gauge NaN (unknown) rather than hold the scrape.
      await withTimeout(sources.eventsWaitingLink(), SCRAPE_QUERY_TIMEOUT_MS).then(
        (n) => this.set(n),
        () => this.set(Number.NaN),
      );
    },
  });
  new Gauge({
    name: 'keyplane_rate_limit_store_fallback',
    help: '1 while rate limits are counted per instance because the shared Redis store is unreachable',
    registers: [registry],
    collect() {
      const store = sources.rateLimitStore?.();
      this.set(store?.fallback ? 1 : 0);
    },
  });
}

/**
 * @param opts.defaultMetrics add prom-client's process series (CPU, memory, event-loop lag, GC);
 *   main.ts does, tests need not.
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, prefix: 'keyplane_' });
  const sources: ScrapeSources = {};
  scrapeGauges(registry, sources);

  const requests = new CounterFamily(registry, 'keyplane_http_requests_total', 'HTTP responses by listener, method, route template and status');
  const latency = new HistogramFamily(registry, 'keyplane_http_request_duration_seconds', 'Time from request received to response sent, by listener, method and route template', LATENCY_BUCKETS);
  const verifyCounter = new CounterFamily(registry, 'keyplane_verify_outcomes_total', 'Verifications (POST /internal/v1/verify) by answer code');
  const batchSize = new HistogramFamily(registry, 'keyplane_batch_size', 'Requests served by one group-commit statement (verify key reads, debits)', BATCH_BUCKETS);
  const batchLatency = new HistogramFamily(registry, 'keyplane_batch_duration_seconds', 'Time one group-commit statement took', LATENCY_BUCKETS);
  const poolWait = new HistogramFamily(registry, 'keyplane_db_pool_wait_seconds', 'Time a query waited for a pool connection, by pool (server mode)', LATENCY_BUCKETS);
  const idempotency = new Counter({ name: 'keyplane_idempotency_total', help: 'Idempotency-Key outcomes other than a first request: replayed, in_progress (409), reused (409)', labelNames: ['outcome'], registers: [registry] });
  const rateLimited = new Counter({ name: 'keyplane_rate_limit_rejections_total', help: 'Requests answered 429 by rate-limit policy', labelNames: ['policy'], registers: [registry] });
  const dbErrors = new Counter({ name: 'keyplane_database_errors_total', help: 'Requests that failed on the database: unavailable (503) or another driver error (500)', labelNames: ['kind'], registers: [registry] });
  const shed = new Counter({ name: 'keyplane_load_shed_total', help: 'Requests refused 503 because the event loop was over its delay threshold', labelNames: ['listener'], registers: [registry] });

  const verifyChildren = Object.fromEntries(VERIFY_CODES.map((code) => [code, verifyCounter.bind({ code })])) as Record<VerifyCode, CounterSeries>;
  const sizeChildren = Object.fromEntries(BATCH_STATEMENTS.map((statement) => [statement, batchSize.bind({ statement })])) as Record<BatchStatement, HistogramSeries>;
  const latencyChildren = Object.fromEntries(BATCH_STATEMENTS.map((statement) => [statement, batchLatency.bind({ statement })])) as Record<BatchStatement, HistogramSeries>;
  const poolWaits = { main: poolWait.bind({ pool: 'main' }), linker: poolWait.bind({ pool: 'linker' }) } as Record<string, HistogramSeries>;
  const idempotencyChildren = Object.fromEntries(IDEMPOTENCY_OUTCOMES.map((o) => [o, idempotency.labels(o)])) as Record<IdempotencyOutcome, Counter.Internal>;
  // Series are visible from the first scrape, at zero, so a rate() has a start.
  for (const c of Object.values(idempotencyChildren)) c.inc(0);
  for (const kind of ['unavailable', 'other']) dbErrors.labels(kind).inc(0);

  /** Per route (keyed by the route's own config object, stable for its lifetime), then per method. */
  const routes = new WeakMap<object, Map<string, RouteSeries>>();

  return {
    registry,
    /** Filled in by the owners of the pools, the linker and the rate-limit store. */
    sources,
    /** One HTTP response. `routeKey` is any object unique to the route (its Fastify config). */
    request(routeKey: object, listener: string, method: string, route: string, status: number, seconds: number): void {
      let byMethod = routes.get(routeKey);
      if (!byMethod) routes.set(routeKey, (byMethod = new Map()));
      let series = byMethod.get(method);
      if (!series) byMethod.set(method, (series = { statuses: new Map(), latency: latency.bind({ listener, method, route }) }));
      let counter = series.statuses.get(status);
      if (!counter) series.statuses.set(status, (counter = requests.bind({ listener, method, route, status: String(status) })));
      counter.inc();
      series.latency.observe(seconds);
    },
    verifyOutcome: (code: VerifyCode) => verifyChildren[code].inc(),
    batch(statement: BatchStatement, size: number, seconds: number): void {
      sizeChildren[statement].observe(size);
      latencyChildren[statement].observe(seconds);
    },
    idempotency: (outcome: IdempotencyOutcome) => idempotencyChildren[outcome].inc(),
    rateLimited: (policy: string) => rateLimited.labels(policy).inc(),
    databaseError: (kind: 'unavailable' | 'other') => dbErrors.labels(kind).inc(),
    loadShed: (listener: string) => shed.labels(listener).inc(),
    poolWait: (pool: string, seconds: number) => (poolWaits[pool] ?? poolWait.bind({ pool })).observe(seconds),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

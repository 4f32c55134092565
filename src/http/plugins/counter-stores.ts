import { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { Clock } from '../../domain/clock.js';

/*
 * Fixed-window counters behind @fastify/rate-limit's store interface (incr / read / child). A window
 * starts with the first hit on a key and lasts timeWindow ms; the count resets when it ends.
 *
 * - MemoryCounterStore: one process. Reads the injectable clock, so tests move past a window
 *   without sleeping.
 * - RedisCounterStore: one limit across every instance (INCR + PEXPIRE in one Lua script, atomic in
 *   Redis). When Redis is unreachable, slow or erroring, each call falls back to an in-process
 *   MemoryCounterStore at once: limits then hold per instance instead of fleet-wide, requests are
 *   never refused or held up because of Redis, and one warning is logged per outage.
 */

export interface CounterResult {
  current: number;
  /** Milliseconds until the window resets (0 when read finds no window). */
  ttl: number;
}
type Callback = (err: Error | null, result?: CounterResult) => void;

export interface CounterStore {
  incr(key: string, cb: Callback, timeWindow: number, max: number): void;
  read(key: string, cb: Callback, timeWindow: number, max: number): void;
  child(params: unknown): CounterStore;
  close(): Promise<void>;
  /** Whether counts are taken in this process because the shared store is unreachable (the metrics). */
  readonly fallingBack: boolean;
}

/**
 * Upper bound on live counters in one process. 100k entries are ~10 MB; beyond it expired windows
 * are swept first, then the oldest windows are dropped (they are the closest to resetting anyway).
 */
const MEMORY_MAX_ENTRIES = 100_000;

export class MemoryCounterStore implements CounterStore {
  readonly fallingBack = false;
  private readonly windows = new Map<string, { count: number; resetAt: number }>();
  constructor(
    private readonly clock: Clock,
    private readonly maxEntries = MEMORY_MAX_ENTRIES,
  ) {}

  incr(key: string, cb: Callback, timeWindow: number): void {
    const now = this.clock.now().getTime();
    let w = this.windows.get(key);
    if (!w || w.resetAt <= now) {
      this.windows.delete(key);
      w = { count: 0, resetAt: now + timeWindow };
      this.windows.set(key, w);
      if (this.windows.size > this.maxEntries) this.evict(now);
    }
    w.count += 1;
    cb(null, { current: w.count, ttl: w.resetAt - now });
  }

  read(key: string, cb: Callback): void {
    const now = this.clock.now().getTime();
    const w = this.windows.get(key);
    if (!w || w.resetAt <= now) cb(null, { current: 0, ttl: 0 });
    else cb(null, { current: w.count, ttl: w.resetAt - now });
  }

  child(): CounterStore {
    return this;
  }

  async close(): Promise<void> {
    this.windows.clear();
  }

  get size(): number {
    return this.windows.size;
  }

  private evict(now: number): void {
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k);
    // Map iterates in insertion order and a new window is re-inserted, so the first are the oldest.
    const excess = this.windows.size - Math.floor(this.maxEntries * 0.9);
    if (excess <= 0) return;
    let n = 0;
    for (const k of this.windows.keys()) {
      if (n++ >= excess) break;
      this.windows.delete(k);
    }
  }
}

/** INCR, start the window on the first hit (or on a key that somehow lost its expiry), return count and PTTL. */
const INCR_LUA = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;
const READ_LUA = `
local current = redis.call('GET', KEYS[1])
if not current then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {tonumber(current), ttl}
`;

type CounterRedis = Redis & {
  keyplaneIncr(key: string, windowMs: number): Promise<[number, number]>;
  keyplaneRead(key: string): Promise<[number, number]>;
};

export interface RedisStoreOptions {
  url: string;
  keyPrefix: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  clock: Clock;
  log: FastifyBaseLogger;
}

/**
 * After a Redis error or timeout, skip Redis for 2 s: a Redis that answers slowly must cost at most
 * one command timeout every 2 s, not one per request.
 */
const BREAKER_MS = 2_000;
/** Reconnect attempts back off 100 ms, 200 ms, … up to 2 s, forever: Redis may come back any time. */
const reconnectDelay = (attempt: number) => Math.min(attempt * 100, 2_000);

export class RedisCounterStore implements CounterStore {
  readonly redis: CounterRedis;
  private readonly fallback: MemoryCounterStore;
  private skipUntil = 0;
  private degraded = false;
  private closing = false;

  /** Inside an outage: counting in this process (degraded), or skipping Redis after a failed command. */
  get fallingBack(): boolean {
    return this.degraded || !this.usable();
  }

  private constructor(private readonly opts: RedisStoreOptions) {
    this.fallback = new MemoryCounterStore(opts.clock);
    const redis = new Redis(opts.url, {
      lazyConnect: true,
      connectTimeout: opts.connectTimeoutMs,
      commandTimeout: opts.commandTimeoutMs,
      // Fail a command at once while disconnected instead of queueing it: the caller falls back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: reconnectDelay,
    });
    redis.defineCommand('keyplaneIncr', { numberOfKeys: 1, lua: INCR_LUA });
    redis.defineCommand('keyplaneRead', { numberOfKeys: 1, lua: READ_LUA });
    redis.on('error', (err: Error) => this.degrade(err));
    // A Redis that dies closes the socket before any reconnect attempt fails with an error: the
    // lost connection is itself the start of an outage (requests already fall back: not 'ready').
    redis.on('close', () => {
      if (!this.closing) this.degrade(new Error('connection to redis closed'));
    });
    redis.on('ready', () => {
      if (this.degraded) opts.log.warn('redis is reachable again: rate limits are shared across instances');
      this.degraded = false;
      this.skipUntil = 0;
    });
    this.redis = redis as CounterRedis;
  }

  /** Connects, waiting at most the connect timeout; a Redis that is down does not delay startup. */
  static async open(opts: RedisStoreOptions): Promise<RedisCounterStore> {
    const store = new RedisCounterStore(opts);
    let timer: NodeJS.Timeout | undefined;
    // connectTimeout covers the TCP handshake only; a server that accepts and never answers would
    // hold connect() (the ready check) forever, so the wait is capped here too.
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        store.degrade(new Error(`no answer from redis within ${opts.connectTimeoutMs} ms`));
        resolve();
      }, opts.connectTimeoutMs);
    });
    const connected = store.redis.connect().catch((err: Error) => store.degrade(err));
    await Promise.race([connected, timeout]);
    clearTimeout(timer);
    return store;
  }

  incr(key: string, cb: Callback, timeWindow: number): void {
    if (!this.usable()) return this.fallback.incr(key, cb, timeWindow);
    this.redis.keyplaneIncr(this.opts.keyPrefix + key, timeWindow).then(
      ([current, ttl]) => cb(null, { current, ttl }),
      (err: Error) => {
        this.trip(err);
        this.fallback.incr(key, cb, timeWindow);
      },
    );
  }

  read(key: string, cb: Callback): void {
    if (!this.usable()) return this.fallback.read(key, cb);
    this.redis.keyplaneRead(this.opts.keyPrefix + key).then(
      ([current, ttl]) => cb(null, { current, ttl }),
      (err: Error) => {
        this.trip(err);
        this.fallback.read(key, cb);
      },
    );
  }

  child(): CounterStore {
    return this;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  private usable(): boolean {
    return this.redis.status === 'ready' && Date.now() >= this.skipUntil;
  }

  private trip(err: Error): void {
    this.skipUntil = Date.now() + BREAKER_MS;
    this.degrade(err);
  }

  /** One warning per outage, not one per request. */
  private degrade(err: Error): void {
    if (this.degraded) return;
    this.degraded = true;
    this.opts.log.warn(
      { err: { message: err.message, code: (err as { code?: string }).code } },
      'redis unavailable: rate limits are counted per instance until it is back',
    );
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import net, { type AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, expect } from 'vitest';
import { generateToken } from '../../src/domain/auth/credentials.js';
import { loggerOptions } from '../../src/http/plugins/logger.js';
import type { RateLimitOptions } from '../../src/http/plugins/rate-limit.js';
import { createTenant, storeOf, testDatabase, type Tenant, type TestApp } from '../support/harness.js';
import { buildLimitedApp, call, expectLimitHeaders, expectRateLimited, FrozenClock } from '../support/rate-limit.js';
import { countPrefix, deletePrefix, freePort, silentServer, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['redis', 'redis-server']);

/*
 * The Redis counter store, in-process: several app instances on one Redis share one limit; a
 * Redis that is unreachable, hung or stopped never makes a request wait or fail. Every key lives
 * under this run's own prefix and is deleted afterwards (the machine's Redis is shared).
 */

const prefix = uniquePrefix('store');
const apps: FastifyInstance[] = [];
let tenant: Tenant;
const clock = new FrozenClock();

// The sharing tests must not fall back because a loaded machine delayed a timer; the down-Redis
// tests never reach a command timeout (refused, or never ready), so the value does not shape them.
const redisOpts = (url = TEST_REDIS_URL, keyPrefix = prefix): NonNullable<RateLimitOptions['redis']> => ({
  url,
  keyPrefix,
  connectTimeoutMs: 500,
  commandTimeoutMs: 2_000,
});

/** A logger that keeps its lines in memory, so a test can look for the warning. */
function capturingLogger() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino(loggerOptions('info'), stream), lines, warned: () => lines.some((l) => l.includes('redis unavailable')) };
}

async function instance(rateLimit: RateLimitOptions, logger?: pino.Logger) {
  const { app } = await buildLimitedApp({ rateLimit, clock, ...(logger ? { logger } : {}) });
  apps.push(app);
  return app;
}

beforeAll(async () => {
  const database = await testDatabase();
  tenant = await createTenant({ database, store: storeOf(database), clock } as unknown as TestApp);
});
afterAll(async () => {
  await Promise.all(apps.map((a) => a.close()));
  await deletePrefix(prefix);
  expect(await countPrefix(prefix)).toBe(0);
});

describe('counters in Redis are one limit across instances', () => {
  it('two instances share a service key’s budget; the 5th request on either is refused', async () => {
    const limits = { 'keys.list': { max: 4, windowSeconds: 60 } };
    const [a, b] = [await instance({ limits, redis: redisOpts() }), await instance({ limits, redis: redisOpts() })];
    for (const [i, app] of [a, b, a, b].entries()) {
      const res = await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey });
      expect(res.status).toBe(200);
      expectLimitHeaders(res, 'keys.list', 4, 60, 3 - i, 60);
    }
    expectRateLimited(await call(a, 'GET', '/v1/keys', { token: tenant.serviceKey }), 60);
    expectRateLimited(await call(b, 'GET', '/api/v1/keys', { token: tenant.serviceKey }), 60);
    expect(await countPrefix(prefix)).toBeGreaterThan(0);
  });

  it('the window resets when the Redis key expires (a 1-second window)', async () => {
    const keyPrefix = `${prefix}short:`;
    const limits = { 'keys.list': { max: 2, windowSeconds: 1 } };
    const [a, b] = [await instance({ limits, redis: redisOpts(TEST_REDIS_URL, keyPrefix) }), await instance({ limits, redis: redisOpts(TEST_REDIS_URL, keyPrefix) })];
    expect((await call(a, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expect((await call(b, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expectRateLimited(await call(a, 'GET', '/v1/keys', { token: tenant.serviceKey }), 60);
    await new Promise((r) => setTimeout(r, 1_100));
    const res = await call(b, 'GET', '/v1/keys', { token: tenant.serviceKey });
    expect(res.status).toBe(200);
    expectLimitHeaders(res, 'keys.list', 2, 1, 1, 1);
  });

  it('failed authentications on one instance dampen the IP on the other', async () => {
    const rl = { authFailures: { max: 3, windowSeconds: 60 }, redis: redisOpts(TEST_REDIS_URL, `${prefix}damp:`) };
    const [a, b] = [await instance(rl), await instance(rl)];
    const get = (app: FastifyInstance, token: string) =>
      app.inject({ method: 'GET', url: '/v1/keys', remoteAddress: '192.0.2.50', headers: { authorization: `Bearer ${token}` } });
    for (const app of [a, b, a]) expect((await get(app, generateToken('service', 'test').plaintext)).statusCode).toBe(401);
    expect((await get(b, tenant.serviceKey)).statusCode).toBe(429);
  });
});

/** Requests over real HTTP, one at a time; returns each one's status and milliseconds. */
async function timedRequests(app: FastifyInstance, n: number): Promise<{ statuses: number[]; ms: number[] }> {
  if (!app.server.listening) await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/v1/keys`;
  const statuses: number[] = [];
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(url, { headers: { authorization: `Bearer ${tenant.serviceKey}` } });
    await res.arrayBuffer();
    ms.push(performance.now() - t0);
    statuses.push(res.status);
  }
  return { statuses, ms };
}
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

/**
 * The same requests to a normal instance and to the one under test, alternating one by one so that
 * the load of a shared machine falls on both alike. "Within 200 ms of normal" is judged on the 90th
 * percentile, so one scheduling hiccup of a busy machine does not decide it.
 */
async function againstNormal(app: FastifyInstance, n = 20) {
  const normal: number[] = [];
  const ms: number[] = [];
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) {
    normal.push(...(await timedRequests(baseline, 1)).ms);
    const r = await timedRequests(app, 1);
    ms.push(...r.ms);
    statuses.push(...r.statuses);
  }
  return { statuses, ms, normal };
}
function expectWithin200msOfNormal(r: { ms: number[]; normal: number[] }) {
  expect(p90(r.ms)).toBeLessThan(p90(r.normal) + 200);
}

let baseline: FastifyInstance;

describe('Redis down: serve, warn, never wait', () => {
  beforeAll(async () => {
    baseline = await instance({ limits: { 'keys.list': { max: 1000, windowSeconds: 3600 } } });
    await timedRequests(baseline, 5); // warm-up
  });

  it('a closed port: every request answered within 200 ms of normal, a warning logged', async () => {
    const log = capturingLogger();
    const t0 = performance.now();
    const app = await instance({ limits: { 'keys.list': { max: 1000, windowSeconds: 3600 } }, redis: redisOpts(`redis://127.0.0.1:${await freePort()}`) }, log.logger);
    expect(performance.now() - t0).toBeLessThan(500 + 1_500); // the connect timeout, plus building the app
    const r = await againstNormal(app);
    expect(new Set(r.statuses)).toEqual(new Set([200]));
    expectWithin200msOfNormal(r);
    expect(log.warned()).toBe(true);
    // One warning per outage, not one per request.
    expect(log.lines.filter((l) => l.includes('redis unavailable')).length).toBe(1);
  });

  it('meanwhile the limits still hold, per instance', async () => {
    const app = await instance({ limits: { 'keys.list': { max: 2, windowSeconds: 60 } }, redis: redisOpts(`redis://127.0.0.1:${await freePort()}`) }, capturingLogger().logger);
    expect((await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expect((await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey })).status).toBe(200);
    expectRateLimited(await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey }), 60);
  });

  it('a hung Redis (accepts, never answers): startup and requests are not held up', async () => {
    const hung = await silentServer();
    try {
      const log = capturingLogger();
      const t0 = performance.now();
      const app = await instance({ limits: { 'keys.list': { max: 1000, windowSeconds: 3600 } }, redis: redisOpts(hung.url) }, log.logger);
      expect(performance.now() - t0).toBeLessThan(500 + 1_500); // the connect timeout, plus building the app
      const r = await againstNormal(app);
      expect(new Set(r.statuses)).toEqual(new Set([200]));
      expectWithin200msOfNormal(r);
      expect(log.warned()).toBe(true);
    } finally {
      await hung.close();
    }
  });

  it('a Redis stopped mid-run: served at once with a warning; when it is back, counters are shared again', async () => {
    const port = await freePort();
    const start = () => startRedis(port);
    let server = await start();
    try {
      const log = capturingLogger();
      const keyPrefix = `${prefix}stopped:`;
      const app = await instance({ limits: { 'keys.list': { max: 1000, windowSeconds: 3600 } }, redis: redisOpts(`redis://127.0.0.1:${port}`, keyPrefix) }, log.logger);
      expect((await timedRequests(app, 3)).statuses).toEqual([200, 200, 200]);
      expect(log.warned()).toBe(false);

      await stopRedis(server);
      const r = await againstNormal(app);
      expect(new Set(r.statuses)).toEqual(new Set([200]));
      expectWithin200msOfNormal(r);
      expect(log.warned()).toBe(true);

      server = await start();
      const deadline = Date.now() + 5_000;
      while (!log.lines.some((l) => l.includes('redis is reachable again')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      expect(log.lines.some((l) => l.includes('redis is reachable again'))).toBe(true);
      const res = await call(app, 'GET', '/v1/keys', { token: tenant.serviceKey });
      // A fresh Redis: the count starts again from 1 there.
      expectLimitHeaders(res, 'keys.list', 1000, 3600, 999, 3600);
    } finally {
      await stopRedis(server);
    }
  });
});

/** A throwaway redis-server of this test's own on its own port (never the machine's Redis). */
async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('throwaway redis-server did not start');
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

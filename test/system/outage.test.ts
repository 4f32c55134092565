import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect } from 'vitest';
import { LINKER_POOL_MAX } from '../../src/db/database.js';
import { createCluster, type Cluster } from './support/cluster.js';
import { checkInvariants } from './support/invariants.js';
import { bootstrap, http, startServer, type HttpResult, type ServerProcess } from './support/server.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['initdb', 'pg_ctl']);

/*
 * Database outage (issue 8, point 2): keyplane under load, its Postgres stopped with
 * `pg_ctl stop -m immediate` (every backend killed at once). Every request must answer 503
 * service_unavailable with Retry-After within 2 s (no hang, no 500, no stack), /readyz must go 503,
 * and once Postgres is back keyplane must recover by itself within 5 s, without leaking pool clients.
 * Two outages in a row, so a leak or a stuck pool from the first shows up in the second.
 */

const WORKERS = 10;
const POOL_MAX = 10;
/** The contract's bounds. */
const ANSWER_WITHIN_MS = 2_000;
const RECOVER_WITHIN_MS = 5_000;

let cluster: Cluster;
let server: ServerProcess | undefined;

beforeAll(async () => {
  cluster = await createCluster();
}, 90_000);

afterAll(async () => {
  await server?.kill();
  await cluster?.destroy();
});

interface Sample {
  at: number;
  phase: 'before' | 'down' | 'after';
  route: string;
  res?: HttpResult;
  error?: string;
}

describe('database outage under load', () => {
  it('answers 503 + Retry-After within 2 s while Postgres is down and recovers by itself within 5 s', async () => {
    server = await startServer(cluster.url, { DATABASE_POOL_MAX: String(POOL_MAX) });
    const tenant = await bootstrap(server);
    const token = tenant.serviceKey;
    const minted = await http(server.base, 'POST', '/v1/keys', { token, body: { name: 'outage' }, headers: { 'idempotency-key': 'outage-0' } });
    expect(minted.status).toBe(201);
    const keyId: string = minted.body.key.id;

    const samples: Sample[] = [];
    let phase: Sample['phase'] = 'before';
    let n = 0;
    const routes: [string, () => Promise<HttpResult>][] = [
      ['list', () => http(server!.base, 'GET', '/v1/keys?limit=5', { token, timeoutMs: 8_000 })],
      ['get', () => http(server!.base, 'GET', `/v1/keys/${keyId}`, { token, timeoutMs: 8_000 })],
      ['mint', () => http(server!.base, 'POST', '/v1/keys', { token, body: { name: `o${++n}` }, headers: { 'idempotency-key': `outage-${n}-${Math.random()}` }, timeoutMs: 8_000 })],
      ['patch', () => http(server!.base, 'PATCH', `/v1/keys/${keyId}`, { token, body: { name: `p${++n}` }, timeoutMs: 8_000 })],
      ['audit', () => http(server!.base, 'GET', '/v1/audit?limit=5', { token: tenant.apiKey, timeoutMs: 8_000 })],
      // Verify's reads and debits go out in shared statements (batched): a failed one must fail each
      // request that waited for it with a 503, and the next must work again.
      ['verify', () => http(server!.adminBase, 'POST', '/internal/v1/verify', { token: server!.adminToken, body: { key: tenant.apiKey, verb: 'read' }, timeoutMs: 8_000 })],
      [
        'debit',
        () =>
          http(server!.adminBase, 'POST', '/internal/v1/verify', {
            token: server!.adminToken,
            body: { key: tenant.apiKey, verb: 'call', cost_cents: 1, request_id: `outage-${++n}-${Math.random()}` },
            timeoutMs: 8_000,
          }),
      ],
    ];
    const stop = { now: false };
    const worker = async (w: number) => {
      for (let i = w; !stop.now; i++) {
        const [route, fn] = routes[i % routes.length]!;
        const s: Sample = { at: Date.now(), phase, route };
        try {
          s.res = await fn();
        } catch (err) {
          s.error = (err as Error).name;
        }
        samples.push(s);
        // Bounded load: a short pause keeps two cores free for Postgres and the server.
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const load = Array.from({ length: WORKERS }, (_, w) => worker(w));

    const recoveries: number[] = [];
    for (let outage = 0; outage < 2; outage++) {
      await new Promise((r) => setTimeout(r, 700));
      phase = 'down';
      await cluster.stopImmediate();
      await new Promise((r) => setTimeout(r, 2_500));
      const ready = await http(server.base, 'GET', '/readyz', { timeoutMs: 5_000 });
      expect(ready.status).toBe(503);
      expect(ready.body.error.code).toBe('service_unavailable');
      expect(ready.headers.get('retry-after')).toBeTruthy();

      await cluster.start();
      const upAt = Date.now();
      // Recovery: the first list that succeeds after the cluster accepts connections again.
      let recoveredAt = 0;
      // What the probes saw, for the failure message: a hang and a steady 503 have different causes.
      const probes: string[] = [];
      while (Date.now() - upAt < 10_000) {
        const at = Date.now() - upAt;
        const r = await http(server.base, 'GET', '/v1/keys?limit=1', { token, timeoutMs: 5_000 }).catch((err: Error) => {
          probes.push(`+${at} ms: ${err.name}`);
          return undefined;
        });
        if (r?.status === 200) {
          recoveredAt = Date.now();
          break;
        }
        if (r) probes.push(`+${at} ms: ${r.status} in ${Math.round(r.ms)} ms ${r.raw.slice(0, 160)}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      if (recoveredAt === 0) {
        // A rare failure (2 in ~20 full runs): say what the server and the database were doing.
        const sessions = await cluster.sessions().catch((err: Error) => [`(pg_stat_activity unavailable: ${err.message})`]);
        const logged = readFileSync(server.logFile, 'utf8')
          .split('\n')
          .filter((line) => /"level":"(warn|error|fatal)"/.test(line))
          .slice(-12);
        expect.fail(
          `keyplane did not recover within 10 s (outage ${outage + 1}); probes:\n${probes.slice(-8).join('\n')}\n` +
            `sessions:\n${sessions.join('\n')}\nlast warnings and errors in ${server.logFile}:\n${logged.join('\n')}`,
        );
      }
      recoveries.push(recoveredAt - upAt);
      phase = 'after';
      const readyAgain = await http(server.base, 'GET', '/readyz');
      expect(readyAgain.status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    stop.now = true;
    await Promise.all(load);

    // No hang, no transport error, no 500: every answer within 2 s, 503 with the envelope when down.
    const failures = samples.filter((s) => s.error);
    expect(failures.map((s) => `${s.route}:${s.error}`)).toEqual([]);
    const slow = samples.filter((s) => s.res!.ms > ANSWER_WITHIN_MS);
    expect(slow.map((s) => `${s.route} ${s.res!.status} ${Math.round(s.res!.ms)}ms`)).toEqual([]);
    const statuses = new Map<string, number>();
    for (const s of samples) {
      const r = s.res!;
      statuses.set(`${s.phase}:${r.status}`, (statuses.get(`${s.phase}:${r.status}`) ?? 0) + 1);
      expect(r.status, `${s.route}: ${r.raw}`).not.toBe(500);
      expect(r.raw).not.toMatch(/ at .*\.(ts|js):\d+|stack|ECONNREFUSED|select |insert |update /i);
      if (r.status === 503) {
        expect(r.body.error.code).toBe('service_unavailable');
        expect(Array.isArray(r.body.error.details)).toBe(true);
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      } else {
        expect([200, 201], `${s.route}: ${r.raw}`).toContain(r.status);
      }
    }
    const down = samples.filter((s) => s.phase === 'down' && s.res!.status === 503);
    expect(down.length).toBeGreaterThan(10);
    // Everything works again after the outages.
    const tail = samples.filter((s) => s.phase === 'after' && s.at > Date.now() - 800);
    expect(tail.length).toBeGreaterThan(0);
    expect(tail.every((s) => s.res!.status < 300)).toBe(true);

    // No leaked pool clients: the server holds at most its pools' worth of connections, and a burst
    // of twice the pool size is served promptly (a leaked client would starve it into 503s).
    const burst = await Promise.all(Array.from({ length: POOL_MAX * 2 }, () => http(server!.base, 'GET', '/v1/keys?limit=1', { token })));
    expect(burst.map((r) => r.status)).toEqual(burst.map(() => 200));
    const connections = await cluster.keyplaneConnections();
    expect(connections).toBeLessThanOrEqual(POOL_MAX + LINKER_POOL_MAX);

    const report = await checkInvariants(cluster.url);
    expect(report.violations).toEqual([]);
    const downLatencies = down.map((s) => s.res!.ms).sort((a, b) => a - b);
    process.stdout.write(
      `[outage] 2 outages; recovery after Postgres restart: ${recoveries.map((ms) => `${ms} ms`).join(', ')}; ` +
        `503s while down: ${down.length} (median ${Math.round(downLatencies[downLatencies.length >> 1]!)} ms, max ${Math.round(downLatencies.at(-1)!)} ms); ` +
        `500s: 0; connections after: ${connections}/${POOL_MAX + LINKER_POOL_MAX}; statuses ${JSON.stringify(Object.fromEntries(statuses))}\n`,
    );
    for (const ms of recoveries) expect(ms).toBeLessThan(RECOVER_WITHIN_MS);
  }, 120_000);
});

import { afterAll, beforeAll, expect } from 'vitest';
import { createCluster, type Cluster } from './support/cluster.js';
import { checkInvariants, missingKeys } from './support/invariants.js';
import { bootstrap, http, startServer, type Bootstrap, type HttpResult, type ServerProcess } from './support/server.js';
import { requires } from '../support/requirements.js';

const { describe, it } = await requires(['initdb', 'pg_ctl']);

/*
 * Load without loss (issue 8, point 6): 60 seconds of mixed traffic (mint, list, get, patch, rotate,
 * revoke, audit) from 50 concurrent connections against keyplane as a real process on its own
 * Postgres, then the crash test's invariants over everything that happened, and not one 5xx.
 * This is the suite's one long test; LOAD_TEST_SECONDS shortens it for local iteration only.
 */

const SECONDS = Number(process.env.LOAD_TEST_SECONDS ?? 60);
const CONNECTIONS = 50;
/** Accounts the workers are spread over: each account's writes serialise on its hash-chain head. */
const ACCOUNTS = 10;

/** The mix, in weights: reads dominate as in production; every write kind is exercised. */
const MIX = [
  ['mint', 14],
  ['list', 20],
  ['get', 20],
  ['patch', 14],
  ['rotate', 10],
  ['revoke', 4],
  ['audit', 18],
] as const;
type Op = (typeof MIX)[number][0];
const TOTAL_WEIGHT = MIX.reduce((s, [, w]) => s + w, 0);
function pick(): Op {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const [op, w] of MIX) if ((r -= w) < 0) return op;
  return 'list';
}

let cluster: Cluster;
let server: ServerProcess | undefined;

beforeAll(async () => {
  cluster = await createCluster();
}, 90_000);

afterAll(async () => {
  await server?.stop();
  await cluster?.destroy();
});

describe(`load: ${SECONDS} s of mixed traffic at ${CONNECTIONS} connections`, () => {
  it('answers no 5xx and loses nothing', async () => {
    server = await startServer(cluster.url, { LOG_LEVEL: 'warn' });
    const tenants: Bootstrap[] = [];
    for (let i = 0; i < ACCOUNTS; i++) tenants.push(await bootstrap(server));
    const base = server.base;
    const counts = new Map<string, number>();
    const latencies: number[] = [];
    const created: string[] = [];
    const fivexx: string[] = [];
    let transportErrors = 0;
    let seq = 0;
    const note = (op: Op, r: HttpResult) => {
      counts.set(`${op} ${r.status}`, (counts.get(`${op} ${r.status}`) ?? 0) + 1);
      latencies.push(r.ms);
      if (r.status >= 500) fivexx.push(`${op} ${r.status} ${r.raw.slice(0, 200)}`);
    };

    const deadline = Date.now() + SECONDS * 1000;
    const worker = async (w: number) => {
      const tenant = tenants[w % ACCOUNTS]!;
      const token = tenant.serviceKey;
      const mine: string[] = [];
      while (Date.now() < deadline) {
        const op: Op = mine.length === 0 ? 'mint' : pick();
        const id = mine[Math.floor(Math.random() * mine.length)];
        try {
          let r: HttpResult;
          switch (op) {
            case 'mint': {
              const idem = `load-${w}-${++seq}`;
              r = await http(base, 'POST', '/v1/keys', { token, body: { name: idem, agent_label: `agent-${w}` }, headers: { 'idempotency-key': idem } });
              if (r.status === 201) {
                mine.push(r.body.key.id);
                created.push(r.body.key.id);
              }
              break;
            }
            case 'list':
              r = await http(base, 'GET', `/v1/keys?limit=20&offset=${Math.floor(Math.random() * 20)}`, { token });
              break;
            case 'get':
              r = await http(base, 'GET', `/v1/keys/${id}`, { token });
              break;
            case 'patch':
              r = await http(base, 'PATCH', `/v1/keys/${id}`, { token, body: { name: `renamed-${++seq}`, monthly_cap_cents: 1000 + seq } });
              break;
            case 'rotate': {
              r = await http(base, 'POST', `/v1/keys/${id}/rotate`, { token, headers: { 'idempotency-key': `load-rot-${w}-${++seq}` } });
              if (r.status === 201) {
                mine[mine.indexOf(id!)] = r.body.key.id;
                created.push(r.body.key.id);
              }
              break;
            }
            case 'revoke':
              r = await http(base, 'DELETE', `/v1/keys/${id}`, { token });
              if (r.status === 200) mine.splice(mine.indexOf(id!), 1);
              break;
            case 'audit':
              r = await http(base, 'GET', '/v1/audit?limit=20', { token: tenant.apiKey });
              break;
          }
          note(op, r);
          // Only the caller's own keys are used, so every answer is a success.
          expect(r.status, `${op}: ${r.raw.slice(0, 200)}`).toBeLessThan(300);
        } catch (err) {
          if ((err as Error).name === 'AssertionError') throw err;
          transportErrors++;
        }
      }
    };
    const t0 = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, (_, w) => worker(w)));
    const elapsed = (Date.now() - t0) / 1000;

    expect(fivexx).toEqual([]);
    expect(transportErrors).toBe(0);
    const report = await checkInvariants(cluster.url);
    expect(report.violations).toEqual([]);
    expect(await missingKeys(cluster.url, created)).toEqual([]);

    const sorted = latencies.sort((a, b) => a - b);
    const q = (p: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!);
    const byOp = Object.fromEntries([...counts].sort());
    process.stdout.write(
      `[load] ${latencies.length} requests in ${elapsed.toFixed(1)} s at ${CONNECTIONS} connections (${Math.round(latencies.length / elapsed)} req/s); ` +
        `5xx: ${fivexx.length}; transport errors: ${transportErrors}; latency p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, max ${q(1)} ms; ` +
        `keys ${report.keys}, rotations ${report.rotations}, events ${report.events}; ${JSON.stringify(byOp)}\n`,
    );
  }, (SECONDS + 120) * 1000);
});

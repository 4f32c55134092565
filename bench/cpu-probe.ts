/*
 * CPU per request of keyplane's own code, in process (app.inject: no sockets, no autocannon), on a
 * throwaway Postgres database: for profiling a route with `node --cpu-prof --import tsx bench/cpu-probe.ts`.
 *   BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres), PROBE_N (default 2000)
 */
import pino from 'pino';
import { buildApp, openDatabase, systemClock, withEvents, authenticate, type ServicePrincipal, mintChildKeyTx, prepareKeyMaterial, portal, LIMIT_NAMES, probeWorld } from './lib/keyplane.js';
import { adminQuery as admin, databaseUrlFor } from './lib/admin-db.js';

const unlimited = () => {
  const rule = { max: 1_000_000_000, windowSeconds: 1 };
  return { limits: Object.fromEntries(LIMIT_NAMES.map((l) => [l, rule])), authFailures: rule };
};

const n = Number(process.env.PROBE_N ?? 2000);
const only = process.env.PROBE_ONLY?.split(',');
const dbName = `keyplane_probe_${Date.now().toString(36)}`;


async function main() {
  await admin(`create database "${dbName}"`);
  const database = await openDatabase({ databaseUrl: databaseUrlFor(dbName), poolMax: 10 });
  try {
    await database.migrate();
    const db = database.db;
    const { services, store } = await probeWorld(database);
    const ctx = () => ({ actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'probe' }, meta: { requestId: null, ip: null, userAgent: null }, now: new Date() });
    const account = await portal.createAccount(store, 'probe', ctx());
    const sk = await portal.createServiceKey(store, { accountId: account.id, environment: 'test', name: 'svc' }, ctx());
    const principal = (await authenticate(db, sk.plaintext, 'service', { readOnly: false, now: new Date() })) as ServicePrincipal;
    const keys: { id: string; token: string }[] = [];
    for (let i = 0; i < 50; i++) {
      const material = await prepareKeyMaterial('test', false);
      const input = { name: `agent ${i}`, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
      await withEvents(store, principal.accountId, (tx) => mintChildKeyTx(tx, principal, input, material, { ...ctx(), actor: { kind: 'service_key', keyId: principal.id, keyPrefix: principal.keyPrefix } }));
      keys.push({ id: material.id, token: material.token.plaintext });
    }
    const app = await buildApp({ services, logger: pino({ level: 'warn' }), clock: systemClock, rateLimit: unlimited() });
    await app.ready();
    const inj = (method: string, url: string, token: string, body?: unknown, headers: Record<string, string> = {}) =>
      app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers }, payload: body === undefined ? undefined : JSON.stringify(body) });
    const cases: Record<string, () => Promise<unknown>> = {
      get: () => inj('GET', `/v1/keys/${keys[0]!.id}`, sk.plaintext),
      list: () => inj('GET', '/v1/keys?limit=50', sk.plaintext),
      list1: () => inj('GET', '/v1/keys?limit=1', sk.plaintext),
      audit: () => inj('GET', '/v1/audit?limit=100', keys[1]!.token),
      audit10: () => inj('GET', '/v1/audit?limit=10', keys[1]!.token),
      mint: () => inj('POST', '/v1/keys', sk.plaintext, { name: 'x' }, { 'idempotency-key': `p-${Math.random()}` }),
    };
    for (const [name, f] of Object.entries(cases)) {
      if (only && !only.includes(name)) continue;
      for (let i = 0; i < 100; i++) await f();
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      await Promise.all(Array.from({ length: 50 }, async () => { for (let i = 0; i < n / 50; i++) await f(); }));
      const c = process.cpuUsage(c0);
      const w = performance.now() - w0;
      process.stdout.write(`${name.padEnd(6)} ${((n / w) * 1000).toFixed(0).padStart(6)} req/s  node cpu ${((c.user + c.system) / n).toFixed(0).padStart(5)} us/req\n`);
    }
    await app.close();
  } finally {
    await database.close();
    if (process.env.PROBE_KEEP) process.stdout.write(`kept database ${dbName}\n`);
    else await admin(`drop database "${dbName}" with (force)`);
  }
}
await main();

/*
 * The server side of bench/verify.bench.ts, run in its own process so that the load generator does
 * not share its event loop. On one pg pool it serves two listeners:
 *  - the real admin app (buildAdminApp: operator token, zod schemas, POST /internal/v1/verify);
 *  - a bare Fastify app with GET /baseline/:id doing one SELECT by primary key on api_keys,
 *    the ceiling any verify can be compared against.
 * It seeds one account with KEYS child keys (no cap, so debits never stop) and one `verify`-scoped
 * operator token, and reports the ports, plaintexts and ids to the parent over IPC.
 */
import Fastify from 'fastify';
import pino from 'pino';
import { buildAdminApp, openDatabase, authenticate, mintChildKeyTx, prepareKeyMaterial, withEvents, portal, probeWorld } from './lib/keyplane.js';

const url = process.env.BENCH_DB_URL!;
const adminToken = process.env.BENCH_ADMIN_TOKEN!;
const keyCount = Number(process.env.BENCH_KEYS ?? 50);
const poolMax = Number(process.env.BENCH_POOL_MAX ?? 10);

const database = await openDatabase({ databaseUrl: url, poolMax });
await database.migrate();

const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'bench' }, meta: { requestId: null, ip: null, userAgent: 'bench' }, now: new Date() };
const { services, store } = await probeWorld(database);
const account = await portal.createAccount(store, 'bench', ctx);
const sk = await portal.createServiceKey(store, { accountId: account.id, environment: 'test', name: 'bench' }, ctx);
const principal = await authenticate(database.db, sk.plaintext, 'service', { readOnly: false, now: new Date() });
if (principal.tier !== 'service') throw new Error('expected a service principal');
const keys: { id: string; plaintext: string }[] = [];
for (let i = 0; i < keyCount; i++) {
  const material = await prepareKeyMaterial('test', false);
  const input = { name: `agent-${i}`, agentLabel: null, lineId: null, permissions: 'full' as const, monthlyCapCents: null, selfRotation: false };
  const row = await withEvents(store, principal.accountId, (tx) => mintChildKeyTx(tx, principal, input, material, ctx));
  keys.push({ id: row.id, plaintext: material.token.plaintext });
}

const verifyToken = (await services.operatorTokens.create({ name: 'bench-data-plane', scope: 'verify' }, ctx)).plaintext_key;

// Logging off on both sides: the comparison is of the work per request, not of log volume (the
// parent counts non-2xx answers, so an error does not go unseen).
const logger = pino({ level: 'silent' });
const admin = await buildAdminApp({ services, logger, adminToken });
const bare = Fastify({ logger: false });
bare.get<{ Params: { id: string } }>('/baseline/:id', async (request) => {
  const { rows } = await database.pool!.query('select * from api_keys where id = $1', [request.params.id]);
  return { found: rows.length === 1 };
});
await admin.listen({ host: '127.0.0.1', port: 0 });
await bare.listen({ host: '127.0.0.1', port: 0 });
const portOf = (a: { server: { address(): unknown } }) => (a.server.address() as { port: number }).port;

process.send!({ adminPort: portOf(admin), barePort: portOf(bare), keys, verifyToken });
process.on('message', async (m) => {
  if (m === 'stop') {
    await Promise.all([admin.close(), bare.close()]);
    await database.close();
    process.exit(0);
  }
});

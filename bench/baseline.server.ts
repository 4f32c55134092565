/*
 * The baseline of the bench: a bare Fastify app, on the same database client keyplane uses (a pg
 * pool with openDatabase's settings, or an in-process PGlite), whose one route runs one SELECT of one
 * key row by primary key and returns it as JSON. No auth, no schema, no event: the cost of the
 * database work alone. It can also answer a stored page instead of the row (the response-size floor below). keyplane's throughput is reported as a ratio to this, measured in the same
 * run, so that machine load hits both.
 *
 *   BASELINE_DATABASE_URL=postgres://…  or  BASELINE_DATA_DIR=/tmp/…   (PGlite)
 *   BASELINE_PORT, BASELINE_POOL_MAX, BASELINE_KEY_ID (PGlite: the row is inserted with that id)
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import pg from 'pg';

const url = process.env.BASELINE_DATABASE_URL;
const dataDir = process.env.BASELINE_DATA_DIR;
const port = Number(process.env.BASELINE_PORT ?? 0);
const keyId = process.env.BASELINE_KEY_ID ?? '00000000-0000-4000-8000-000000000001';
const MIGRATIONS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../migrations');

type Client = { query(q: unknown, values?: unknown[]): Promise<{ rows: unknown[] }> };

/**
 * The pool keyplane's openDatabase (src/db/client.ts) builds, with the same settings, built here so
 * that this process loads none of keyplane's code (its memory and start-up are the bare app's).
 */
function postgresPool(connectionString: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: Number(process.env.BASELINE_POOL_MAX ?? 10),
    connectionTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: 10_000,
    query_timeout: 11_000,
    application_name: 'keyplane-baseline',
    options: '-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_bitmapscan=off -c jit=off',
  });
  pool.on('error', () => {});
  return pool;
}

/** An embedded database in `dir`, migrated with keyplane's migrations by the same migrator keyplane uses. */
async function pglite(dir: string): Promise<{ client: Client; close(): Promise<void> }> {
  const [{ PGlite }, { drizzle }, { migrate }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('drizzle-orm/pglite'),
    import('drizzle-orm/pglite/migrator'),
  ]);
  mkdirSync(dir, { recursive: true });
  const client = new PGlite(path.join(dir, 'pgdata'));
  await client.waitReady;
  await migrate(drizzle(client), { migrationsFolder: MIGRATIONS });
  return { client: client as unknown as Client, close: () => client.close() };
}

const embedded = url ? undefined : await pglite(dataDir ?? 'baseline-data');
const pool = url ? postgresPool(url) : undefined;
const client: Client = pool ?? embedded!.client;
const database = { kind: pool ? 'postgres' : 'pglite', close: async () => (pool ? pool.end() : embedded!.close()) };

// The same statement keyplane's read needs at minimum. Postgres: a named (prepared) statement, so
// the baseline is the driver at its best, not a strawman.
const SELECT = 'select * from api_keys where id = $1';
const select =
  database.kind === 'postgres'
    ? (id: string) => client.query({ name: 'baseline_key', text: SELECT, values: [id] })
    : (id: string) => client.query(SELECT, [id]);

if (database.kind === 'pglite') {
  // A fresh embedded database: give it the one row the route reads.
  const accountId = '00000000-0000-4000-8000-0000000000aa';
  await client.query(`insert into accounts (id, name, created_at) values ($1, 'baseline', now())`, [accountId]);
  await client.query(
    `insert into api_keys (id, account_id, environment, name, permissions, cycle_anchor, key_prefix, token_hash, created_at, agent_id)
     values ($1::uuid, $2, 'test', 'baseline', 'full', now(), 'sk_test_baseline', md5($3), now(), $1::uuid)`,
    [keyId, accountId, keyId],
  );
}

const app = Fastify({ logger: false });
app.get<{ Params: { id: string } }>('/baseline/keys/:id', async (request, reply) => {
  const { rows } = await select(request.params.id);
  if (rows.length === 0) return reply.code(404).send({ error: 'not found' });
  return { key: rows[0] };
});
app.get('/healthz', async () => ({ status: 'ok' }));

// The response-size floor (bench/run.ts): a body keyplane answered, stored here once, then sent
// instead of the row by the baseline's own route (the same one SELECT), so that the cost of moving
// that many bytes through HTTP (Node's writes, the load generator's parsing) is measured on top of
// the baseline and apart from the work behind the page.
const pages = new Map<string, string>();
app.put<{ Params: { name: string }; Body: string }>('/baseline/pages/:name', { bodyLimit: 16 * 1024 * 1024 }, async (request, reply) => {
  pages.set(request.params.name, request.body);
  return reply.code(204).send();
});
app.get<{ Params: { name: string; id: string } }>('/baseline/pages/:name/:id', async (request, reply) => {
  const page = pages.get(request.params.name);
  const { rows } = await select(request.params.id);
  if (page === undefined || rows.length === 0) return reply.code(404).send({ error: 'not found' });
  return reply.type('application/json; charset=utf-8').send(page);
});

await app.listen({ host: '127.0.0.1', port });
const stop = async () => {
  await app.close();
  await database.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import { createCluster, type Cluster } from './support/cluster.js';
import { bootstrap, http, startServer, type ServerProcess } from './support/server.js';
import { requires } from '../support/requirements.js';

const { it } = await requires(['initdb', 'pg_ctl']);

/*
 * An answer is durable before it is given: a Postgres crash right after a 201 loses nothing the
 * client saw (src/db/durability.ts, flushWal). Mints commit asynchronously and are answered after
 * flushWal; until 3a11833 that flush was `select txid_current()`, which never waited for the WAL.
 *
 * The throwaway cluster's WAL writer is slowed to 10 s, so that only keyplane's own flush can put a
 * commit record on disk in time, and `pg_ctl stop -m immediate` then drops whatever WAL was still
 * only in shared memory (fsync=off on this cluster does not matter: the processes die, the machine
 * does not, and WAL handed to the kernel survives).
 */

const ROUNDS = 4;

let cluster: Cluster;
let server: ServerProcess | undefined;
beforeAll(async () => {
  cluster = await createCluster({ wal_writer_delay: '10s' });
}, 90_000);
afterAll(async () => {
  await server?.kill();
  await cluster?.destroy();
});

async function rowsFor(ids: string[]): Promise<{ keys: number; events: number }> {
  const c = new pg.Client({ connectionString: cluster.url });
  await c.connect();
  try {
    const keys = await c.query('select count(*)::int as n from api_keys where id = any($1::uuid[])', [ids]);
    const events = await c.query("select count(*)::int as n from compliance_events where event_type = 'agent_key_created' and subject_key_id = any($1::uuid[])", [ids]);
    return { keys: keys.rows[0].n, events: events.rows[0].n };
  } finally {
    await c.end();
  }
}

async function ready(s: ServerProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await http(s.base, 'GET', '/readyz').catch(() => ({ status: 0 }))).status !== 200) {
    if (Date.now() > deadline) throw new Error('keyplane never became ready after the restart');
    await new Promise((r) => setTimeout(r, 100));
  }
}

it(`every key whose 201 the client saw, and its event, survive a Postgres crash right after (${ROUNDS} crashes)`, async () => {
  server = await startServer(cluster.url);
  const tenant = await bootstrap(server);
  const minted: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await http(server.base, 'POST', '/v1/keys', {
        token: tenant.serviceKey,
        body: { name: `durable-${round}-${i}` },
        headers: { 'idempotency-key': `durable-${round}-${i}` },
      });
      expect(r.status, r.raw).toBe(201);
      ids.push(r.body.key.id);
    }
    // The crash, the moment the last 201 is in.
    await cluster.stopImmediate();
    await cluster.start();
    minted.push(...ids);
    expect(await rowsFor(ids), `round ${round}`).toEqual({ keys: ids.length, events: ids.length });
    await ready(server);
  }
  expect(await rowsFor(minted)).toEqual({ keys: minted.length, events: minted.length });
}, 180_000);

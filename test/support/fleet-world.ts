import { openDatabase, type Database } from '../../src/db/database.js';
import * as portal from '../../src/domain/portal/portal.service.js';
import { ADMIN_TOKEN, recordSecrets, storeOf } from './harness.js';
import { createFleetDatabase, startInstance, type Instance } from './fleet.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from './redis.js';

/** Two keyplane processes on one new Postgres database and one Redis key prefix, with an account. */
export interface FleetWorld {
  database: Database;
  accountId: string;
  /** Plaintext service keys of the account, one per name asked for. */
  serviceKeys: string[];
  a: Instance;
  b: Instance;
  /** Stops both processes, drops the database and deletes the Redis prefix. */
  stop(): Promise<void>;
}

/**
 * The fleet tests' world: a database of its own (migrated here), an account with `names.length`
 * service keys, and two instances sharing the database and a Redis prefix. The Redis command
 * timeout is generous: on a loaded CI machine a busy event loop must not make an instance fall back
 * to counting alone (the fallback has its own tests); for the same reason load shedding is off (an
 * instance that sheds while the machine runs other suites is not what these tests are about; the
 * shedding has its own tests in test/integration/metrics.test.ts).
 */
export async function startFleet(label: string, names: string[]): Promise<FleetWorld> {
  const prefix = uniquePrefix(label);
  const fleetDb = await createFleetDatabase(label);
  const database = await openDatabase({ databaseUrl: fleetDb.url, poolMax: 2 });
  await database.migrate();
  const ctx = { actor: { kind: 'portal' as const, keyId: null, keyPrefix: 'test' }, meta: { requestId: null, ip: null, userAgent: 'vitest' }, now: new Date() };
  const account = await portal.createAccount(storeOf(database), label, ctx);
  const serviceKeys: string[] = [];
  for (const name of names) {
    const sk = await portal.createServiceKey(storeOf(database), { accountId: account.id, environment: 'test', name }, ctx);
    recordSecrets(sk.plaintext);
    serviceKeys.push(sk.plaintext);
  }
  const env = { DATABASE_URL: fleetDb.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, REDIS_COMMAND_TIMEOUT_MS: '2000', KEYPLANE_ADMIN_TOKEN: ADMIN_TOKEN, LOAD_SHED_MAX_EVENT_LOOP_DELAY_MS: '0' };
  const [a, b] = await Promise.all([startInstance(`${label}-a`, env), startInstance(`${label}-b`, env)]);
  return {
    database,
    accountId: account.id,
    serviceKeys,
    a,
    b,
    async stop() {
      await Promise.all([a.stop(), b.stop()]);
      await database.close();
      await fleetDb.drop();
      await deletePrefix(prefix);
    },
  };
}

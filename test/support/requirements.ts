import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, it } from 'vitest';
import { serverUrl } from './fleet.js';
import { TEST_REDIS_URL } from './redis.js';

/*
 * What a test file needs beyond the fast loop's database, checked once when the file is collected.
 * Locally a missing requirement skips the file's tests with a warning that names it and says how to
 * get it. In CI every test must run, so a missing requirement fails the file instead.
 */

export type Requirement = 'redis' | 'redis-server' | 'initdb' | 'pg_ctl' | 'postgres' | 'root' | 'pgbouncer';

const PG_BINARIES = 'PostgreSQL server binaries: `apt-get install postgresql`, then put /usr/lib/postgresql/<version>/bin on PATH';

const NEEDS: Record<Requirement, { what: () => string; how: string; present: () => Promise<boolean> }> = {
  redis: {
    what: () => `a Redis server at ${TEST_REDIS_URL}`,
    how: '`apt-get install redis-server` (it listens on 127.0.0.1:6379), or set TEST_REDIS_URL',
    present: redisAnswers,
  },
  'redis-server': { what: () => 'the `redis-server` binary on PATH', how: '`apt-get install redis-server`', present: async () => onPath('redis-server') },
  initdb: { what: () => 'the `initdb` binary on PATH', how: PG_BINARIES, present: async () => onPath('initdb') },
  pg_ctl: { what: () => 'the `pg_ctl` binary on PATH', how: PG_BINARIES, present: async () => onPath('pg_ctl') },
  postgres: {
    what: () => `a PostgreSQL server at ${redact(serverUrl())} where this user may create databases`,
    how: 'set TEST_DATABASE_URL to one, or run one on 127.0.0.1:5432 (user postgres, trust authentication)',
    present: postgresAnswers,
  },
  pgbouncer: {
    what: () => 'the `pgbouncer` binary on PATH (Debian installs it in /usr/sbin)',
    how: '`apt-get install pgbouncer` (the tests start their own; no service needs to run)',
    present: async () => onPath('pgbouncer'),
  },
  root: {
    what: () => 'root, with `setpriv` on PATH (the test acts as an unprivileged user, as a container does)',
    how: 'run the system tests as root (CI does); `setpriv` is in util-linux',
    present: async () => process.getuid?.() === 0 && onPath('setpriv'),
  },
};

export const inCI = (): boolean => process.env.CI === 'true' || process.env.CI === '1';

function onPath(binary: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    try {
      accessSync(path.join(dir, binary), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

async function redisAnswers(): Promise<boolean> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: serverUrl(), connectionTimeoutMillis: 2_000 });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ ok: boolean }>('select rolcreatedb or rolsuper as ok from pg_roles where rolname = current_user');
    return rows[0]?.ok === true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** A URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

export interface Gate {
  /** `describe`, skipped when a requirement is missing (locally). */
  describe: ReturnType<typeof describe.skipIf>;
  /** `it`, skipped when a requirement is missing (locally). */
  it: ReturnType<typeof it.skipIf>;
  /** The requirements this machine lacks (empty when every one is met). */
  missing: Requirement[];
}

/**
 * Checks a test file's requirements: `const { describe, it } = await requires(['redis', 'redis-server'])`
 * at the top of the file, in place of vitest's own `describe`/`it`. A skipped file runs none of its
 * hooks either (vitest skips the hooks of a suite whose tests are all skipped).
 */
export async function requires(needs: Requirement[]): Promise<Gate> {
  const results = await Promise.all(needs.map(async (n) => [n, await NEEDS[n].present()] as const));
  const missing = results.filter(([, ok]) => !ok).map(([n]) => n);
  if (missing.length > 0) {
    const lines = missing.map((n) => `  - ${NEEDS[n].what()}: ${NEEDS[n].how}`).join('\n');
    if (inCI()) throw new Error(`CI runs every test, but this machine lacks:\n${lines}`);
    console.warn(`[keyplane tests] skipping this file's tests; this machine lacks:\n${lines}\n(CI has them and runs these tests.)`);
  }
  const skip = missing.length > 0;
  return { describe: describe.skipIf(skip), it: it.skipIf(skip), missing };
}

import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { migratePglite, migratePostgres, pgliteMigrationStatus, postgresMigrationStatus, type MigrationLogger, type MigrationStatus } from './migrate.js';
import { dumpPglite } from './pglite/backup.js';
import { acquireDataDirLock, type DataDirLock } from './pglite/data-dir-lock.js';
import { copyTemplateDir, readTemplate } from './pglite/template.js';
import { DIR_MODE, ownDataDir, tightenTree } from './pglite/permissions.js';
import { schema } from './schema.js';
import { STATEMENT_TIMEOUT_MS, startupOptions, UnnamedStatementClient } from './session-settings.js';
import type { Db } from './types.js';

export type { Db } from './types.js';
export type { MigrationStatus } from './migrate.js';

/** Connections of the linker's own pool (Database.linkerDb says why it has one). */
export const LINKER_POOL_MAX = 2;

export interface Database {
  readonly kind: 'postgres' | 'pglite';
  readonly db: Db;
  /**
   * Connections for the work that every writing request waits on: linking compliance events and the
   * WAL flush after it (domain/audit/linker.ts). In server mode that is a second, small pool, so that
   * a linking round never queues behind the very requests waiting for it in the main pool (with 50
   * requests on 10 connections it would wait twice per round). Embedded mode has one connection.
   */
  readonly linkerDb: Db;
  /**
   * Brings the schema up to this code (db/migrate.ts): the migrations not applied yet, then the SQL
   * functions that changed, each reported to `log`; serialised across processes. Throws
   * UnknownMigrationError when the database holds a migration this code does not know.
   */
  migrate(log?: MigrationLogger): Promise<void>;
  /** What migrate() would apply, read without changing anything. */
  migrationStatus(): Promise<MigrationStatus>;
  /** One round trip; throws when the database does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
  /** The pg pool in server mode (for pool metrics and tests); undefined in embedded mode. */
  readonly pool?: pg.Pool;
  /**
   * Embedded mode: the database's dump, a gzipped tarball of its data directory (pglite/backup.ts),
   * taken while it stays open. Undefined in server mode, whose backups are Postgres's own (pg_dump, PITR).
   */
  readonly dump?: () => Promise<Uint8Array>;
  /** Server mode's pools by name (`main`, `linker`), for the metrics read at scrape time. */
  readonly pools?: Readonly<Record<PoolName, Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>>>;
}

export type PoolName = 'main' | 'linker';

export interface OpenDatabaseOptions {
  databaseUrl?: string;
  /** Embedded mode: where PGlite keeps its files; undefined = in memory (tests). */
  dataDir?: string;
  poolMax?: number;
  /** Fail fast when Postgres is down instead of queueing requests behind a dead pool. */
  connectionTimeoutMs?: number;
  /** `transaction`: DATABASE_URL is a pooler in transaction mode (db/session-settings.ts). */
  pooler?: 'none' | 'transaction';
  /** Told how long each checkout waited for a pool connection (the metrics); server mode only. */
  onPoolWait?: (pool: PoolName, seconds: number) => void;
}

export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts) : openPglite(opts.dataDir);
}

function openPostgres(url: string, opts: OpenDatabaseOptions): Database {
  const pool = newPool(url, opts, opts.poolMax ?? 10);
  const linkerPool = newPool(url, opts, LINKER_POOL_MAX);
  if (opts.onPoolWait) {
    timeCheckouts(pool, 'main', opts.onPoolWait);
    timeCheckouts(linkerPool, 'linker', opts.onPoolWait);
  }
  const db = drizzlePg(pool, { schema }) as unknown as Db;
  return {
    kind: 'postgres',
    db,
    linkerDb: drizzlePg(linkerPool, { schema }) as unknown as Db,
    pool,
    pools: { main: pool, linker: linkerPool },
    migrate: (log) => migratePostgres(pool, log, { roleSettings: opts.pooler === 'transaction' }),
    migrationStatus: () => postgresMigrationStatus(pool),
    async ping() {
      await pool.query('select 1');
    },
    async close() {
      await Promise.all([pool.end(), linkerPool.end()]);
    },
  };
}

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, release: (err?: Error) => void) => void;

/**
 * Times every checkout, the pool's own queries included (pg-pool's query() checks out through
 * connect()): the wait is the time spent in the pool's queue plus any new connection's handshake.
 */
function timeCheckouts(pool: pg.Pool, name: PoolName, observe: (pool: PoolName, seconds: number) => void): void {
  const connect = pool.connect.bind(pool) as (cb?: ConnectCallback) => Promise<pg.PoolClient> | void;
  const timed = (cb?: ConnectCallback) => {
    const started = performance.now();
    const waited = () => observe(name, (performance.now() - started) / 1000);
    if (cb) {
      return connect((err, client, release) => {
        if (!err) waited();
        cb(err, client, release);
      });
    }
    return (connect() as Promise<pg.PoolClient>).then((client) => {
      waited();
      return client;
    });
  };
  pool.connect = timed as typeof pool.connect;
}

function newPool(url: string, opts: OpenDatabaseOptions, max: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    // 2 s: a request waiting longer than that for a connection is better answered 503.
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 2_000,
    idleTimeoutMillis: 30_000,
    query_timeout: STATEMENT_TIMEOUT_MS + 1_000,
    application_name: 'keyplane',
    // Behind a transaction-mode pooler the settings come from the role (db/session-settings.ts).
    ...(opts.pooler === 'transaction'
      ? { Client: UnnamedStatementClient }
      : { statement_timeout: STATEMENT_TIMEOUT_MS, options: startupOptions() }),
  });
  // An idle client losing its server (restart, failover) emits here; without a listener it would
  // crash the process. The pool drops the client and makes a new one on the next checkout.
  pool.on('error', () => {});
  // A client that is checked out (inside a transaction, between two statements) has no pool
  // listener; when its server dies (`pg_ctl stop -m immediate`, failover) pg emits 'error' on the
  // client itself, and an unhandled 'error' event kills the whole process (found by the outage test
  // in test/system). The statement in flight, if any, rejects with the same error and the request
  // answers 503; on release the pool sees the client is no longer queryable and discards it.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  return pool;
}

async function openPglite(dataDir: string | undefined): Promise<Database> {
  let lock: DataDirLock | undefined;
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
    ownDataDir(dataDir);
    // PGlite is single-process: a second process opening the same directory would corrupt it.
    lock = acquireDataDirLock(dataDir);
  }
  try {
    // Loaded only in embedded mode: importing PGlite costs ~44 MB of resident memory, which a
    // server on Postgres should not carry (measured: 105 → 149 MB RSS at import).
    const [{ PGlite }, { drizzle: drizzlePglite }] = await Promise.all([import('@electric-sql/pglite'), import('drizzle-orm/pglite')]);
    // A new data directory (or an in-memory database) starts from the migrated template when
    // `npm ci` built one (db/pglite-template.ts): loading it takes 0.9 s, initdb 3.5 s. On disk,
    // a copy of the unpacked template is quicker still than loading the tarball.
    const pgdata = dataDir ? path.join(dataDir, 'pgdata') : undefined;
    let template: Blob | undefined;
    if (pgdata === undefined) template = readTemplate();
    else if (!existsSync(pgdata) && !copyTemplateDir(pgdata)) template = readTemplate();
    const client = new PGlite(pgdata, template ? { loadDataDir: template } : undefined);
    await client.waitReady;
    if (pgdata) tightenTree(pgdata);
    const db = drizzlePglite(client, { schema }) as unknown as Db;
    return {
      kind: 'pglite',
      db,
      linkerDb: db,
      migrate: (log) => migratePglite(client, log),
      migrationStatus: () => pgliteMigrationStatus(client),
      async ping() {
        await client.query('select 1');
      },
      dump: () => dumpPglite(client),
      async close() {
        await client.close();
        if (pgdata) tightenTree(pgdata);
        lock?.release();
      },
    };
  } catch (err) {
    lock?.release();
    throw err;
  }
}

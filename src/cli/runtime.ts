import { InvalidArgumentError } from 'commander';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseConfig, type Config } from '../config.js';
import type { MigrationLogger } from '../db/migrate.js';
import type { OpContext } from '../domain/context.js';
import { isUuid } from '../domain/ids.js';
import type { Services } from '../domain/services.js';
import { openConfiguredDatabase } from '../main.js';
import { createServices } from '../services.js';
import { CliError } from './exit-codes.js';
import { RemoteApi } from './remote.js';

/*
 * What every command shares. A command runs either the domain services themselves, against
 * DATABASE_URL or the embedded database in --data-dir / DATA_DIR (never an implicit ./data), or,
 * with --url / KEYPLANE_URL, the internal API of a running server. With --json it prints exactly
 * one JSON object on stdout (a created secret under plaintext_key).
 */

export const cliContext = (): OpContext => ({
  actor: { kind: 'portal', keyId: null, keyPrefix: 'cli' },
  meta: { requestId: null, ip: null, userAgent: 'keyplane-cli' },
  now: new Date(),
});

export interface CliRuntime {
  services: Services;
  config: Config;
  database: 'postgres' | 'pglite';
}

/** The global options of this invocation (index.ts sets them before a command's action runs). */
export interface Invocation {
  url?: string;
  token?: string;
  dataDir?: string;
  /** The command's words, e.g. `keys replay-revocations`, for messages. */
  command?: string;
}
let invocation: Invocation = {};
export const setInvocation = (i: Invocation) => void (invocation = i);

/** Each migration step on standard error, so that a --json answer stays the only thing on stdout. */
export const stderrMigrationLog: MigrationLogger = {
  info: (fields, message) => process.stderr.write(`${message}: ${Object.values(fields).join(' ')}\n`),
};

/** The server --url names (flag, else KEYPLANE_URL), unless --data-dir asks for the database itself. */
function remoteUrl(): string | undefined {
  if (invocation.dataDir) return undefined;
  return invocation.url ?? process.env.KEYPLANE_URL;
}

export const isRemote = () => remoteUrl() !== undefined;

/** The configuration of a local command: DATABASE_URL, or an embedded directory named explicitly. */
export function cliConfig(): Config {
  // Whatever runs on the database cannot honour --url: say so rather than open a database instead.
  if (isRemote()) throw notRemote(invocation.command ?? 'this command');
  const env = { ...process.env };
  if (invocation.dataDir) {
    env.DATA_DIR = invocation.dataDir;
    delete env.DATABASE_URL;
  }
  if (!env.DATABASE_URL && !env.DATA_DIR) {
    throw new CliError(
      'no_database',
      'no database given: set DATABASE_URL (Postgres), or --data-dir / DATA_DIR (the embedded database; the server uses ./data), ' +
        'or --url / KEYPLANE_URL with --token / KEYPLANE_TOKEN to use a running server',
    );
  }
  const config = parseConfig(env);
  if (!config.DATABASE_URL) process.stderr.write(`keyplane: embedded database in ${path.resolve(config.DATA_DIR)}\n`);
  return config;
}

async function open<T>(fn: (rt: CliRuntime) => Promise<T>, prepare: (db: Awaited<ReturnType<typeof openConfiguredDatabase>>) => Promise<void>): Promise<T> {
  const config = cliConfig();
  const database = await openConfiguredDatabase(config);
  try {
    await prepare(database);
    return await fn({ services: createServices(database), config, database: database.kind });
  } finally {
    await database.close();
  }
}

/** Opens the configured database, migrating it first (commands that write), runs `fn`, and closes it. */
export function withServices<T>(fn: (rt: CliRuntime) => Promise<T>, migrationLog?: MigrationLogger): Promise<T> {
  return open(fn, (database) => database.migrate(migrationLog));
}

/**
 * Opens the configured database without changing its schema: a database (or embedded directory)
 * that is behind this code is refused with database_not_migrated, and no directory is created.
 */
export async function withReadOnlyServices<T>(fn: (rt: CliRuntime) => Promise<T>): Promise<T> {
  const config = cliConfig();
  if (!config.DATABASE_URL && !existsSync(path.join(config.DATA_DIR, 'pgdata'))) {
    throw new CliError('database_not_migrated', `no embedded database in ${path.resolve(config.DATA_DIR)}: run keyplane migrate (or start the server) first`);
  }
  return open(fn, async (database) => {
    const status = await database.migrationStatus();
    if (status.pending.length > 0 || status.changedSqlFiles.length > 0) {
      throw new CliError('database_not_migrated', `database not migrated (${status.pending.length} migration(s) pending): run keyplane migrate`);
    }
  });
}

/** The running server named by --url / KEYPLANE_URL, with the operator token of --token / KEYPLANE_TOKEN. */
export function remoteApi(): RemoteApi {
  const url = remoteUrl()!;
  const token = invocation.token ?? process.env.KEYPLANE_TOKEN;
  if (!/^https?:\/\//.test(url)) throw new CliError('usage_error', `--url must be an http:// or https:// URL of the admin listener, e.g. http://127.0.0.1:8081`);
  if (!token) throw new CliError('usage_error', '--url needs an operator token: --token or KEYPLANE_TOKEN (embedded first run: the file DATA_DIR/admin-token)');
  return new RemoteApi(url, token);
}

export interface Backends<T> {
  /** The command on the database itself. */
  local: (rt: CliRuntime) => Promise<T>;
  /** The same through the internal API; null where the API has no route for it. */
  remote: ((api: RemoteApi) => Promise<T>) | null;
  /** Read-only commands never migrate. */
  readOnly?: boolean;
}

/** Runs a command where the invocation says: a running server (--url) or the database. */
export function dispatch<T>(name: string, b: Backends<T>): Promise<T> {
  if (isRemote()) {
    if (!b.remote) return Promise.reject(notRemote(name));
    return b.remote(remoteApi());
  }
  return b.readOnly ? withReadOnlyServices(b.local) : withServices(b.local);
}

export const notRemote = (name: string) =>
  new CliError(
    'not_available_remotely',
    `keyplane ${name} has no internal API route, so it cannot run with --url: run it on the database (DATABASE_URL, or --data-dir with the embedded server stopped)`,
  );

export function print(json: boolean, value: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

/** Ends a command with a given exit status after it has printed its own output. */
export class CliExit extends Error {
  constructor(readonly status: number) {
    super(`exit ${status}`);
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** Commander's parser for an id: anything but a UUID is a usage error (exit 2), never a query. */
export function uuidArg(value: string): string {
  if (!isUuid(value)) throw new InvalidArgumentError('must be a UUID');
  return value;
}

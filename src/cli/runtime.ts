import { parseConfig, type Config } from '../config.js';
import type { MigrationLogger } from '../db/migrate.js';
import type { OpContext } from '../domain/context.js';
import type { Services } from '../domain/services.js';
import { openConfiguredDatabase } from '../main.js';
import { createServices } from '../services.js';

/*
 * What every command shares. Each runs the same domain services as the internal API, against
 * DATABASE_URL or the embedded database in DATA_DIR, and with --json prints exactly one JSON object
 * on stdout (a created secret under plaintext_key).
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

/** Each migration step on standard error, so that a --json answer stays the only thing on stdout. */
export const stderrMigrationLog: MigrationLogger = {
  info: (fields, message) => process.stderr.write(`${message}: ${Object.values(fields).join(' ')}\n`),
};

/** Opens the configured database (migrating it first), runs `fn`, and closes it. */
export async function withServices<T>(fn: (rt: CliRuntime) => Promise<T>, migrationLog?: MigrationLogger): Promise<T> {
  const config = parseConfig(process.env);
  const database = await openConfiguredDatabase(config);
  try {
    await database.migrate(migrationLog);
    return await fn({ services: createServices(database), config, database: database.kind });
  } finally {
    await database.close();
  }
}

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

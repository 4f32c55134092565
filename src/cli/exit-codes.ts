import { isDatabaseUnavailable, isDriverError } from '../db/errors.js';
import { DataDirBusyError } from '../db/pglite/data-dir-lock.js';
import { UnknownMigrationError } from '../db/migrate.js';
import { DomainError } from '../domain/errors.js';

/*
 * The CLI's exit statuses, in one place (docs/operations.md, "Exit codes" lists the same):
 *
 *   0  done (and for verify: the key is valid)
 *   1  the answer is no: not valid, not found, refused by a rule or by the server's token check
 *   2  usage: a missing, unknown or malformed argument or option (a non-UUID id), a validation error
 *   3  audit verify found a broken hash chain
 *   4  unavailable: the database or server is unreachable, the data directory is held by a
 *      running server, or the database is not migrated
 *
 * Every error also has a code, printed with --json as {"error":{"code","message"}}: the API's own
 * codes (not_found, validation_error, …) and the CLI's below. Never SQL, never a stack.
 */

export const EXIT = { ok: 0, no: 1, usage: 2, chainBroken: 3, unavailable: 4 } as const;
export type ExitStatus = (typeof EXIT)[keyof typeof EXIT];

/** Codes the CLI adds to the API's (domain/errors.ts). */
export type CliErrorCode =
  | 'usage_error'
  | 'invalid_configuration'
  | 'no_database'
  | 'database_unavailable'
  | 'database_not_migrated'
  | 'database_unknown_migration'
  | 'data_dir_locked'
  | 'server_unreachable'
  | 'not_available_remotely';

const STATUS_OF: Record<string, ExitStatus> = {
  usage_error: EXIT.usage,
  validation_error: EXIT.usage,
  bad_request: EXIT.usage,
  invalid_configuration: EXIT.usage,
  no_database: EXIT.usage,
  not_available_remotely: EXIT.usage,
  not_embedded: EXIT.usage,
  database_unavailable: EXIT.unavailable,
  database_not_migrated: EXIT.unavailable,
  database_unknown_migration: EXIT.unavailable,
  data_dir_locked: EXIT.unavailable,
  server_unreachable: EXIT.unavailable,
  service_unavailable: EXIT.unavailable,
  idempotency_in_progress: EXIT.unavailable,
  rate_limited: EXIT.unavailable,
  backup_in_progress: EXIT.unavailable,
};

/** The exit status of an error code; any code not listed (not_found, invalid_api_key, …) is a no: 1. */
export const exitStatusOf = (code: string): ExitStatus => STATUS_OF[code] ?? EXIT.no;

/** An error the CLI raises itself, or an API error answered by a server in --url mode. */
export class CliError extends Error {
  constructor(
    readonly code: CliErrorCode | string,
    message: string,
  ) {
    super(message);
  }
}

/** What any thrown error becomes on the way out: a code and a message safe to print. */
export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof CliError) return { code: err.code, message: err.message };
  if (err instanceof DomainError) return { code: err.code, message: err.code === 'not_found' ? 'not found' : err.message };
  if (err instanceof DataDirBusyError) return { code: 'data_dir_locked', message: err.message };
  if (err instanceof UnknownMigrationError) return { code: 'database_unknown_migration', message: err.message };
  if (isDatabaseUnavailable(err)) return { code: 'database_unavailable', message: `the database is unreachable (${reasonOf(err)})` };
  // Any other driver error would carry its SQL text: name its SQLSTATE only.
  if (isDriverError(err)) return { code: 'internal_error', message: `unexpected database error (${reasonOf(err)})` };
  const message = (err as Error)?.message ?? String(err);
  if (message.startsWith('invalid configuration')) return { code: 'invalid_configuration', message: message.replace(/\n\s*/g, ' ') };
  return { code: 'internal_error', message: message.split('\n')[0]! };
}

function reasonOf(err: unknown): string {
  let e = err as { code?: string; cause?: unknown };
  for (let depth = 0; !e.code && e.cause && depth < 5; depth++) e = e.cause as typeof e;
  return e.code ?? 'no answer';
}

import { DomainError } from '../errors.js';

/*
 * The online backup of the embedded database (GET /internal/v1/backup, `keyplane backup --url`): the
 * running server's own dump of the data directory it holds. A dump is the whole database in memory,
 * twice while it is compressed, so a process takes one at a time; a second request is told to retry.
 * Server mode has none: Postgres is backed up with its own tools.
 */

/** When a refused second backup may try again: a dump of a small database takes a second or two. */
export const BACKUP_RETRY_AFTER_S = 5;

export interface BackupService {
  /** Whether this process can take one: embedded mode only. */
  readonly available: boolean;
  /** The embedded database's dump (a gzipped tarball), taken while it keeps serving. */
  take(): Promise<Uint8Array>;
}

export function createBackupService(dump: (() => Promise<Uint8Array>) | undefined): BackupService {
  let running = false;
  return {
    available: dump !== undefined,
    async take() {
      if (!dump) {
        throw new DomainError(
          'not_embedded',
          'This server runs on Postgres (DATABASE_URL): back it up with pg_dump or point-in-time recovery (docs/operations.md, "Backups and restore").',
        );
      }
      if (running) {
        throw new DomainError('backup_in_progress', undefined, [], { retryAfterSeconds: BACKUP_RETRY_AFTER_S });
      }
      running = true;
      try {
        return await dump();
      } finally {
        running = false;
      }
    },
  };
}

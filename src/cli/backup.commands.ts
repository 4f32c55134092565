import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { restorePglite } from '../db/pglite/backup.js';
import { DataDirBusyError } from '../db/pglite/data-dir-lock.js';
import { openConfiguredDatabase } from '../main.js';
import { CliError } from './exit-codes.js';
import { cliConfig, isRemote, notRemote, print, stderrMigrationLog } from './runtime.js';

/*
 * keyplane backup / restore: the embedded database's own dump (db/pglite/backup.ts), with the
 * server stopped: the data directory allows one process at a time, and a running server holds it.
 * Embedded mode has no online backup; server mode has Postgres's own (pg_dump, point-in-time
 * recovery), which is where a deployment that cannot stop belongs (docs/operations.md, "Backups").
 */

const SERVER_MODE =
  'DATABASE_URL is set: a Postgres database is backed up and restored with pg_dump/pg_restore or point-in-time recovery (docs/operations.md, "Backups")';

/** After any restore, the revocations made since the backup must be made again. */
const AFTER_RESTORE =
  'now run `keyplane keys replay-revocations <audit export>` with an audit export taken after the backup: keys revoked since the backup are live again until then';

/** The embedded directory named by --data-dir or DATA_DIR (never an implicit ./data); not through --url. */
function embeddedConfig(cmd: Command): Config {
  if (isRemote()) throw notRemote(cmd.name());
  const config = cliConfig();
  if (config.DATABASE_URL) cmd.error(`keyplane ${cmd.name()}: ${SERVER_MODE}`, { exitCode: 2, code: 'commander.invalidArgument' });
  return config;
}

/** A running server holds the data directory: say what to do instead of only that it is busy. */
function explainBusy(err: unknown, what: string): never {
  if (err instanceof DataDirBusyError) {
    throw new CliError('data_dir_locked', `the server (pid ${err.pid}) is using ${err.dataDir}: stop it first, ${what}`);
  }
  throw err;
}

/** Written under a temporary name and renamed: a file of that name is always a whole backup. */
function writePrivate(file: string, data: Uint8Array): void {
  const partial = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.partial`);
  try {
    writeFileSync(partial, data, { mode: 0o600 });
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
}

async function readInput(file: string): Promise<Uint8Array> {
  if (file !== '-') return new Uint8Array(await readFile(file));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

async function backup(file: string, o: { json?: boolean }, cmd: Command): Promise<void> {
  const config = embeddedConfig(cmd);
  // Opening a directory with no database would make a new, empty one, and back that up.
  if (!existsSync(path.join(config.DATA_DIR, 'pgdata'))) throw new CliError('not_found', `there is no embedded database in ${config.DATA_DIR} (DATA_DIR) to back up`);
  // Not migrated: a backup taken before an upgrade must hold the schema as it was.
  const database = await openConfiguredDatabase(config).catch((err: unknown) => explainBusy(err, 'then back up (embedded mode has no online backup: docs/operations.md, "Backups")'));
  let dump: Uint8Array;
  try {
    dump = await database.dump!();
  } finally {
    await database.close();
  }
  const out = { backup: file, bytes: dump.byteLength, data_dir: config.DATA_DIR, taken_at: new Date().toISOString() };
  if (file === '-') {
    process.stdout.write(dump);
    process.stderr.write(`backup of ${config.DATA_DIR}: ${dump.byteLength} bytes\n`);
    return;
  }
  writePrivate(file, dump);
  print(!!o.json, out, `backup of ${config.DATA_DIR} written to ${file} (${dump.byteLength} bytes)`);
}

async function restore(file: string, o: { json?: boolean }, cmd: Command): Promise<void> {
  const config = embeddedConfig(cmd);
  const dump = await readInput(file);
  if (dump.byteLength === 0) cmd.error('keyplane restore: the backup is empty', { exitCode: 2, code: 'commander.invalidArgument' });
  const outcome = await restorePglite(config.DATA_DIR, dump, stderrMigrationLog).catch((err: unknown) => explainBusy(err, 'then restore'));
  const kept = outcome.previous ? `; the database it replaced is kept in ${outcome.previous} (remove it once the restore is checked)` : '';
  print(!!o.json, { restored: true, data_dir: config.DATA_DIR, previous: outcome.previous, next: AFTER_RESTORE }, `restored ${config.DATA_DIR} from ${file}${kept}\n${AFTER_RESTORE}`);
}

/** backup and restore (embedded mode). */
export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description('write the embedded database (DATA_DIR) to a file, with the server stopped')
    .argument('<file>', "where to write it, or '-' for stdout")
    .option('--json', 'print JSON')
    .action(backup);
  program
    .command('restore')
    .description('replace the embedded database (DATA_DIR) with a backup, with the server stopped; then replay revocations')
    .argument('<file>', "a file `keyplane backup` wrote, or '-' to read it from stdin")
    .option('--json', 'print JSON')
    .action(restore);
}

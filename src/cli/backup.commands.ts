import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../config.js';
import { restorePglite } from '../db/pglite/backup.js';
import { DataDirBusyError } from '../db/pglite/data-dir-lock.js';
import { openConfiguredDatabase } from '../main.js';
import { CliError } from './exit-codes.js';
import { cliConfig, isRemote, notRemote, print, remoteApi, stderrMigrationLog } from './runtime.js';

/*
 * keyplane backup / restore: the embedded database's own dump (db/pglite/backup.ts). Locally with
 * the server stopped (the data directory allows one process at a time, and a running server holds
 * it), or online with --url: the running server dumps the database it holds (GET
 * /internal/v1/backup). Restore is offline only: it replaces the directory a server would hold.
 * Server mode has Postgres's own (pg_dump, point-in-time recovery; docs/operations.md, "Backups").
 */

const SERVER_MODE =
  'DATABASE_URL is set: a Postgres database is backed up and restored with pg_dump/pg_restore or point-in-time recovery (docs/operations.md, "Backups")';

/** After any restore, the revocations made since the backup must be made again. */
const AFTER_RESTORE =
  'now run `keyplane keys replay-revocations <audit export>` with an audit export taken after the backup: keys revoked since the backup are live again until then';

/** The embedded directory named by --data-dir or DATA_DIR (never an implicit ./data); not through --url. */
function embeddedConfig(cmd: Command): Config {
  if (isRemote()) throw new CliError(notRemote(cmd.name()).code, `keyplane ${cmd.name()} cannot run with --url: a restore replaces the data directory a running server holds; stop the server, then restore with --data-dir / DATA_DIR`);
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

/** The dump to stdout, or to a private file, and what was written. */
function writeBackup(file: string, dump: Uint8Array, from: { data_dir: string } | { url: string }, json: boolean): void {
  const source = 'url' in from ? from.url : from.data_dir;
  if (file === '-') {
    process.stdout.write(dump);
    process.stderr.write(`backup of ${source}: ${dump.byteLength} bytes\n`);
    return;
  }
  writePrivate(file, dump);
  const out = { backup: file, bytes: dump.byteLength, ...from, taken_at: new Date().toISOString() };
  print(json, out, `backup of ${source} written to ${file} (${dump.byteLength} bytes)`);
}

async function backup(file: string, o: { json?: boolean }, cmd: Command): Promise<void> {
  if (isRemote()) {
    const api = remoteApi();
    writeBackup(file, await api.download('/backup'), { url: api.baseUrl }, !!o.json);
    return;
  }
  const config = embeddedConfig(cmd);
  // Opening a directory with no database would make a new, empty one, and back that up.
  if (!existsSync(path.join(config.DATA_DIR, 'pgdata'))) throw new CliError('not_found', `there is no embedded database in ${config.DATA_DIR} (DATA_DIR) to back up`);
  // Not migrated: a backup taken before an upgrade must hold the schema as it was.
  const database = await openConfiguredDatabase(config).catch((err: unknown) => explainBusy(err, 'then back up, or back up the running server with --url and --token (docs/operations.md, "Backups")'));
  let dump: Uint8Array;
  try {
    dump = await database.dump!();
  } finally {
    await database.close();
  }
  writeBackup(file, dump, { data_dir: config.DATA_DIR }, !!o.json);
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
    .description('write the embedded database to a file: DATA_DIR with the server stopped, or a running server\'s with --url')
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

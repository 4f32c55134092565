import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { MigrationStatus } from '../db/database.js';
import { openConfiguredDatabase } from '../main.js';
import { CliError, EXIT } from './exit-codes.js';
import { CliExit, cliConfig, isRemote, notRemote, print, stderrMigrationLog, withServices } from './runtime.js';

function describeStatus(s: MigrationStatus, database: string): string {
  const lines = [`database: ${database}`, ...s.applied.map((t) => `applied  ${t}`), ...s.pending.map((t) => `pending  ${t}`)];
  if (s.changedSqlFiles.length > 0) lines.push(`SQL functions to (re)apply: ${s.changedSqlFiles.join(', ')}`);
  for (const when of s.unknown) lines.push(`unknown  ${when} (migrated by a newer keyplane)`);
  lines.push(s.unknown.length > 0 ? 'refused: a newer keyplane migrated this database' : upToDate(s) ? 'up to date' : 'behind: run keyplane migrate');
  return lines.join('\n');
}

const upToDate = (s: MigrationStatus) => s.pending.length === 0 && s.changedSqlFiles.length === 0 && s.unknown.length === 0;

/** migrate (apply) and migrate status (report, change nothing): never through --url. */
export function registerMigrateCommands(program: Command): void {
  const migrate = program
    .command('migrate')
    .description('apply pending migrations and exit (status: report them)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      if (isRemote()) throw notRemote('migrate');
      await withServices(async ({ database }) => print(!!o.json, { migrated: true, database }, `migrations applied (${database})`), stderrMigrationLog);
    });
  migrate
    .command('status')
    .description('list applied and pending migrations without changing anything (exit 0 up to date, 4 behind)')
    .option('--json', 'print JSON')
    .action(async (_o: object, cmd: Command) => {
      // `migrate` itself takes --json, and commander gives it to the parent: read both.
      const o = cmd.optsWithGlobals<{ json?: boolean }>();
      if (isRemote()) throw notRemote('migrate status');
      const config = cliConfig();
      if (!config.DATABASE_URL) refuseMissingDir(config.DATA_DIR);
      const database = await openConfiguredDatabase(config);
      let status: MigrationStatus;
      try {
        status = await database.migrationStatus();
      } finally {
        await database.close();
      }
      const json = { database: database.kind, up_to_date: upToDate(status), applied: status.applied, pending: status.pending, changed_sql_files: status.changedSqlFiles, unknown: status.unknown };
      print(!!o.json, json, describeStatus(status, database.kind));
      if (!upToDate(status)) throw new CliExit(EXIT.unavailable);
    });
}

/** An embedded directory that does not exist is reported, not created (status changes nothing). */
function refuseMissingDir(dataDir: string): void {
  if (!existsSync(path.join(dataDir, 'pgdata'))) throw new CliError('database_not_migrated', `no embedded database in ${path.resolve(dataDir)}: keyplane migrate creates it`);
}

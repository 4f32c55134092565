import { Command } from 'commander';
import { parseConfig } from '../config.js';
import { DomainError } from '../domain/errors.js';
import { serveForever } from '../main.js';
import { registerAuditCommands } from './audit.commands.js';
import { registerBackupCommands } from './backup.commands.js';
import { registerOperatorTokenCommands } from './operator-tokens.commands.js';
import { registerKeysCommands } from './keys.commands.js';
import { registerPortalCommands } from './portal.commands.js';
import { registerReplayRevocationsCommand } from './replay-revocations.command.js';
import { CliExit, print, stderrMigrationLog, withServices } from './runtime.js';
import { registerVerifyCommand } from './verify.command.js';

export { EXIT_CHAIN_BROKEN } from './audit.commands.js';

/** The keyplane command: serve, migrate, and one file per command group. */
function buildCli(): Command {
  const program = new Command('keyplane')
    .description('keyplane: a key-management plane for fleets of AI agents')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('serve')
    .description('run the server (applies pending migrations first)')
    .action(async () => serveForever(parseConfig(process.env)));

  program
    .command('migrate')
    .description('apply pending migrations and exit')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) =>
      withServices(async ({ database }) => print(!!o.json, { migrated: true, database }, `migrations applied (${database})`), stderrMigrationLog),
    );

  registerPortalCommands(program);
  registerOperatorTokenCommands(program);
  registerKeysCommands(program);
  registerReplayRevocationsCommand(program);
  registerAuditCommands(program);
  registerVerifyCommand(program);
  registerBackupCommands(program);
  return program;
}

/** Errors become one line on stderr (and one JSON object with --json), never a stack trace. */
export async function runCli(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    await buildCli().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CliExit) return err.status;
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code?.startsWith('commander.')) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      // Every other commander error is bad usage (a missing argument or option, an unknown one, too
      // many arguments): exit 2, as documented, never 1, which means "done, and the answer is no".
      return 2;
    }
    const code = err instanceof DomainError ? err.code : 'error';
    const message = err instanceof DomainError && err.code === 'not_found' ? 'not found' : (e.message ?? String(err));
    if (json) process.stdout.write(`${JSON.stringify({ error: { code, message } })}\n`);
    process.stderr.write(`keyplane: ${message}\n`);
    return 1;
  }
}

// Run when invoked as a program (bin/keyplane.js or `tsx src/cli/index.ts`), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (invoked.endsWith('cli/index.ts') || invoked.endsWith('keyplane') || invoked.endsWith('keyplane.js')) {
  const code = await runCli(process.argv.slice(2));
  // serve keeps running; every other command exits with its code.
  if (process.argv[2] !== 'serve' || code !== 0) process.exit(code);
}

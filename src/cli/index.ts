import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { parseConfig } from '../config.js';
import { serveForever } from '../main.js';
import { registerAuditCommands } from './audit.commands.js';
import { registerBackupCommands } from './backup.commands.js';
import { describeError, EXIT, exitStatusOf } from './exit-codes.js';
import { registerMigrateCommands } from './migrate.commands.js';
import { registerOperatorTokenCommands } from './operator-tokens.commands.js';
import { registerKeysCommands } from './keys.commands.js';
import { registerPortalCommands } from './portal.commands.js';
import { registerReplayRevocationsCommand } from './replay-revocations.command.js';
import { CliExit, setInvocation, type Invocation } from './runtime.js';
import { registerVerifyCommand } from './verify.command.js';

export { EXIT_CHAIN_BROKEN } from './audit.commands.js';

/** package.json's version (the CLI runs from src/cli or dist/cli: both two levels below it). */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Whether this run started the server, which keeps the process alive (every other command exits). */
let serving = false;

/** Every command takes --json: its answer, and any error, as one JSON object on stdout. */
function addJsonEverywhere(command: Command): void {
  for (const sub of command.commands) {
    if (sub.commands.length > 0) addJsonEverywhere(sub);
    else if (!sub.options.some((o) => o.long === '--json')) sub.option('--json', 'print JSON (errors too)');
  }
}

/** The keyplane command: serve, migrate, and one file per command group. */
export function buildCli(): Command {
  const program = new Command('keyplane')
    .description('keyplane: a key-management plane for fleets of AI agents')
    .version(VERSION, '-V, --version', 'print the version (package.json)')
    .addOption(new Option('--url <url>', "a running server's admin listener, e.g. http://127.0.0.1:8081 (or KEYPLANE_URL)"))
    .addOption(new Option('--token <token>', 'operator token for --url (or KEYPLANE_TOKEN)'))
    .addOption(new Option('--data-dir <dir>', 'the embedded database directory (or DATA_DIR); without it, DATABASE_URL'))
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError()
    .exitOverride();
  program.hook('preAction', (_program, action) => {
    const words: string[] = [];
    for (let c: Command | null = action; c?.parent; c = c.parent) words.unshift(c.name());
    setInvocation({ ...action.optsWithGlobals<Invocation>(), command: words.join(' ') });
  });

  program
    .command('serve')
    .description('run the server (applies pending migrations first; embedded in --data-dir/DATA_DIR, default ./data)')
    .action(async (_o: object, cmd: Command) => {
      const { dataDir } = cmd.optsWithGlobals<Invocation>();
      const env = dataDir ? { ...process.env, DATA_DIR: dataDir } : process.env;
      await serveForever(parseConfig(env));
      serving = true;
    });
  registerMigrateCommands(program);
  registerPortalCommands(program);
  registerOperatorTokenCommands(program);
  registerKeysCommands(program);
  registerReplayRevocationsCommand(program);
  registerAuditCommands(program);
  registerVerifyCommand(program);
  registerBackupCommands(program);
  addJsonEverywhere(program);
  return program;
}

/** Commander's own errors: a usage error (exit 2), a value a parser refused a validation error. */
function commanderError(e: { code: string; message?: string }): { code: string; message: string } | null {
  if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return null;
  const code = e.code === 'commander.invalidArgument' || e.code === 'commander.invalidOptionArgument' ? 'validation_error' : 'usage_error';
  return { code, message: (e.message ?? 'usage error').replace(/^error: /, '') };
}

/** Errors become one line on stderr (and one JSON object with --json), never a stack trace; the exit status says which kind. */
export async function runCli(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  setInvocation({});
  let error: { code: string; message: string };
  let status: number;
  try {
    await buildCli().parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CliExit) return err.status;
    const e = err as { code?: string; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      const usage = commanderError(e as { code: string });
      if (!usage) return EXIT.ok;
      // Commander has already printed the message (and the help) on stderr.
      if (json) process.stdout.write(`${JSON.stringify({ error: usage })}\n`);
      return EXIT.usage;
    }
    error = describeError(err);
    status = exitStatusOf(error.code);
  }
  if (json) process.stdout.write(`${JSON.stringify({ error })}\n`);
  process.stderr.write(`keyplane: ${error.message}\n`);
  return status;
}

// Run when invoked as a program (bin/keyplane.js, `node dist/cli/index.js`, `tsx src/cli/index.ts`), not when imported by tests.
const invoked = process.argv[1] ?? '';
if (/cli\/index\.[jt]s$|keyplane(\.js)?$/.test(invoked)) {
  const code = await runCli(process.argv.slice(2));
  // serve keeps running; every other command exits with its code.
  if (!serving || code !== 0) process.exit(code);
}

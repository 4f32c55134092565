import { Command, Option } from 'commander';
import { parseConfig, type Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { OpContext } from '../domain/context.js';
import { DomainError } from '../domain/errors.js';
import { toKeyObject, toServiceKeyObject } from '../domain/keys/key-object.js';
import { accountIds, exportAccountEvents, verifyChains } from '../domain/audit/chain.service.js';
import { countUnlinkedEvents, linkPendingEvents } from '../domain/audit/linker.js';
import { eventWireFields } from '../domain/audit/events.js';
import * as portal from '../domain/portal/portal.service.js';
import { isUuid } from '../domain/keys/keys.service.js';
import type { VerifyAnswer } from '../http/routes/verify.schemas.js';
import { openConfiguredDatabase, serveForever } from '../server.js';

/*
 * The keyplane command. Every command runs the same domain code as the internal API, against
 * DATABASE_URL or the embedded database in DATA_DIR, and with --json prints exactly one JSON
 * object on stdout (a created secret under plaintext_key).
 */

const cliContext = (): OpContext => ({
  actor: { kind: 'portal', keyId: null, keyPrefix: 'cli' },
  meta: { requestId: null, ip: null, userAgent: 'keyplane-cli' },
  now: new Date(),
});

async function withDatabase<T>(fn: (db: Database, config: Config) => Promise<T>): Promise<T> {
  const config = parseConfig(process.env);
  const database = await openConfiguredDatabase(config);
  try {
    await database.migrate();
    return await fn(database, config);
  } finally {
    await database.close();
  }
}

function print(json: boolean, value: object, human: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${human}\n`);
}

/** Ends a command with a given exit status after it has printed its own output. */
class CliExit extends Error {
  constructor(readonly status: number) {
    super(`exit ${status}`);
  }
}

/** `audit verify` exits with this when a chain is broken (1 is any other error, 2 a usage error). */
export const EXIT_CHAIN_BROKEN = 3;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

function describeVerify(r: VerifyAnswer): string {
  const k = r.key;
  const spend = k ? `spend ${k.monthly_spend_cents}${k.monthly_cap_cents === null ? '' : `/${k.monthly_cap_cents}`} cents this cycle` : '';
  if (r.valid) {
    const debit = r.debit ? `, debited ${r.debit.cost_cents} cents${r.debit.replayed ? ' (already debited: not again)' : ''}` : '';
    return `valid: ${k!.key_prefix} (${k!.permissions}${k!.line_id ? `, line ${k!.line_id}` : ''}), ${spend}${debit}`;
  }
  const e = r.error!.error;
  const details = e.details.map((d) => d.message).join('; ');
  return `not valid: ${r.code} (${r.status}) ${e.message}${details ? ` ${details}` : ''}${k ? ` [${k.key_prefix}, ${spend}]` : ''}`;
}

const environmentOption = () =>
  new Option('--environment <env>', 'test or live').choices(['test', 'live']).default('test');

export function buildCli(): Command {
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
      withDatabase(async (db) => print(!!o.json, { migrated: true, database: db.kind }, `migrations applied (${db.kind})`)),
    );

  program
    .command('bootstrap')
    .description('create a test account with one service key and one portal API key, for a smoke test')
    .option('--json', 'print JSON')
    .option('--name <name>', 'account name', 'bootstrap')
    .action(async (o: { json?: boolean; name: string }) =>
      withDatabase(async (db, config) => {
        const b = await portal.bootstrap(db.db, cliContext(), o.name);
        const out = { account_id: b.account.id, environment: 'test', service_key: b.serviceKey.plaintext, api_key: b.apiKey.plaintext };
        const base = `http://localhost:${config.PORT}`;
        print(
          !!o.json,
          out,
          [
            `account      ${out.account_id} (test)`,
            `service key  ${out.service_key}`,
            `api key      ${out.api_key}`,
            '',
            'These secrets are shown once. Try:',
            `  curl -H "Authorization: Bearer ${out.service_key}" ${base}/v1/keys`,
          ].join('\n'),
        );
      }),
    );

  const accounts = program.command('accounts').description('accounts');
  accounts
    .command('create')
    .requiredOption('--name <name>', 'account name')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; json?: boolean }) =>
      withDatabase(async (db) => {
        const a = await portal.createAccount(db.db, o.name, cliContext());
        const out = { id: a.id, name: a.name, created_at: a.createdAt.toISOString() };
        print(!!o.json, out, `account ${a.id} created`);
      }),
    );

  const sk = program.command('service-keys').description('service keys (sk_svc_…)');
  sk.command('create')
    .requiredOption('--account <id>', 'account id')
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'service key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: 'test' | 'live'; name: string; json?: boolean }) =>
      withDatabase(async (db) => {
        const k = await portal.createServiceKey(db.db, { accountId: o.account, environment: o.environment, name: o.name }, cliContext());
        const out = { ...toServiceKeyObject(k.row), plaintext_key: k.plaintext };
        print(!!o.json, out, `service key ${k.row.id} (${k.row.keyPrefix})\n${k.plaintext}\nShown once: store it now.`);
      }),
    );
  sk.command('list')
    .requiredOption('--account <id>', 'account id')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; json?: boolean }) =>
      withDatabase(async (db) => {
        const rows = await portal.listServiceKeys(db.db, o.account);
        const human = rows.map((r) => `${r.id}  ${r.keyPrefix}  ${r.environment}  ${r.revokedAt ? 'revoked' : 'active'}  ${r.name}`);
        print(!!o.json, { service_keys: rows.map(toServiceKeyObject) }, human.join('\n') || '(none)');
      }),
    );
  sk.command('rotate')
    .argument('<id>', 'service key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withDatabase(async (db) => {
        const k = await portal.rotateServiceKey(db.db, id, cliContext());
        const out = { ...toServiceKeyObject(k.row), plaintext_key: k.plaintext };
        print(!!o.json, out, `service key ${id} rotated to ${k.row.id} (${k.row.keyPrefix})\n${k.plaintext}\nShown once: store it now.`);
      }),
    );
  sk.command('revoke')
    .argument('<id>', 'service key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withDatabase(async (db) => {
        const row = await portal.revokeServiceKey(db.db, id, cliContext());
        print(!!o.json, toServiceKeyObject(row), `service key ${id} revoked`);
      }),
    );

  const ak = program.command('api-keys').description('portal API keys (sk_test_…/sk_live_…, legacy_full)');
  ak.command('create')
    .requiredOption('--account <id>', 'account id')
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'portal key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: 'test' | 'live'; name: string; json?: boolean }) =>
      withDatabase(async (db) => {
        const k = await portal.createPortalApiKey(db.db, { accountId: o.account, environment: o.environment, name: o.name }, cliContext());
        const out = { ...toKeyObject(k.row), account_id: k.row.accountId, plaintext_key: k.plaintext };
        print(!!o.json, out, `api key ${k.row.id} (${k.row.keyPrefix})\n${k.plaintext}\nShown once: store it now.`);
      }),
    );
  ak.command('revoke')
    .argument('<id>', 'api key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withDatabase(async (db) => {
        const row = await portal.revokePortalApiKey(db.db, id, cliContext());
        print(!!o.json, { ...toKeyObject(row), account_id: row.accountId }, `api key ${id} revoked`);
      }),
    );

  const audit = program.command('audit').description('the compliance log (hash-chained, append-only)');
  audit
    .command('verify')
    .description("recompute every account's hash chain (or one account's) and report the first broken link")
    .option('--account <id>', 'verify this account only')
    .option('--json', 'print JSON')
    .action(async (o: { account?: string; json?: boolean }) =>
      withDatabase(async (db) => {
        // Events still waiting for their link (a crash between commit and linking) are linked
        // first, as the server's sweeper would: they are committed facts, and verification covers them.
        const waiting = await countUnlinkedEvents(db.db, o.account && isUuid(o.account) ? o.account : undefined);
        if (waiting > 0) await linkPendingEvents(db.db);
        const v = await verifyChains(db.db, { accountId: o.account });
        const b = v.firstBreak;
        const out = {
          ok: b === null,
          accounts: v.accounts,
          events: v.events,
          linked_first: waiting,
          first_break: b && { account_id: b.accountId, seq: b.seq, event_id: b.eventId, problem: b.problem, message: b.message },
        };
        const human = b
          ? `chain broken: account ${b.accountId}, seq ${b.seq}, event ${b.eventId ?? '(none)'}: ${b.problem}: ${b.message}`
          : `ok: ${v.accounts} account(s), ${v.events} event(s), every chain intact${waiting ? ` (${waiting} waiting event(s) linked first)` : ''}`;
        print(!!o.json, out, human);
        if (b) throw new CliExit(EXIT_CHAIN_BROKEN);
      }),
    );
  audit
    .command('export')
    .description("write an account's events (or every account's) as JSON lines, in seq order, for archiving")
    .option('--account <id>', 'export this account only')
    .option('--after-seq <n>', 'only events after this seq (incremental archives; with --account)', '0')
    .action(async (o: { account?: string; afterSeq: string }) =>
      withDatabase(async (db) => {
        if (o.account && !isUuid(o.account)) throw new DomainError('not_found');
        const ids = o.account ? [(await portal.getAccount(db.db, o.account)).id] : accountIds(db.db);
        for await (const id of ids) {
          for await (const e of exportAccountEvents(db.db, id, o.account ? Number(o.afterSeq) || 0 : 0)) {
            const line = { ...eventWireFields(e), seq: e.seq, prev_hash: e.prevHash, hash: e.hash };
            if (!process.stdout.write(`${JSON.stringify(line)}\n`)) await new Promise((r) => process.stdout.once('drain', r));
          }
        }
      }),
    );

  program
    .command('verify')
    .description('verify an API key for a data-plane action, as POST /internal/v1/verify does (exit 0 valid, 1 not)')
    .argument('<key>', "the API key (sk_test_…/sk_live_…), or '-' to read it from stdin")
    .requiredOption('--verb <verb>', 'read, call, sms or admin')
    .option('--line-id <uuid>', 'the line the action targets')
    .option('--cost-cents <n>', 'debit this many cents from the monthly cap (needs --request-id)')
    .option('--request-id <id>', 'idempotency of the debit: a repeated id debits once')
    .option('--json', 'print JSON')
    .action(async (key: string, o: { verb: string; lineId?: string; costCents?: string; requestId?: string; json?: boolean }, cmd: Command) => {
      // Loaded here, not at the top: every other command starts without them.
      const [{ verifyKey, verifyResultJson }, { verifyBody }] = await Promise.all([import('../domain/verify/verify.service.js'), import('../http/routes/verify.schemas.js')]);
      const parsed = verifyBody.safeParse({
        key: key === '-' ? await readStdin() : key,
        verb: o.verb,
        line_id: o.lineId,
        // Decimal digits only: Number() would also take '0x10', '1e1' or ' 5 '.
        cost_cents: o.costCents === undefined ? undefined : /^[0-9]+$/.test(o.costCents) ? Number(o.costCents) : o.costCents,
        request_id: o.requestId,
      });
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
        cmd.error(`keyplane verify: ${why}`, { exitCode: 2, code: 'commander.invalidArgument' });
      }
      const b = parsed.data!;
      const result = await withDatabase((db) =>
        verifyKey(db.db, { key: b.key, verb: b.verb, lineId: b.line_id ?? null, costCents: b.cost_cents, requestId: b.request_id }, new Date()),
      );
      // The same JSON as POST /internal/v1/verify answers.
      const answer = JSON.parse(verifyResultJson(result)) as VerifyAnswer;
      print(!!o.json, answer, describeVerify(answer));
      if (!result.valid) throw new CliExit(1);
    });

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
  if (process.argv[2] !== 'serve') process.exit(code);
}

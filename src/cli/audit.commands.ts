import type { Command } from 'commander';
import { eventWireFields } from '../domain/audit/chain-hash.js';
import { EXIT } from './exit-codes.js';
import { CliExit, isRemote, notRemote, print, uuidArg, withReadOnlyServices } from './runtime.js';

/** `audit verify` exits with this when a chain is broken (exit-codes.ts has them all). */
export const EXIT_CHAIN_BROKEN = EXIT.chainBroken;

/** The audit commands read the database itself: the internal API has no route for them. */
function local<T>(name: string, fn: Parameters<typeof withReadOnlyServices<T>>[0]): Promise<T> {
  return isRemote() ? Promise.reject(notRemote(name)) : withReadOnlyServices(fn);
}

/** audit verify and audit export: the compliance log, checked and archived (never migrating it). */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the compliance log (hash-chained, append-only)');
  audit
    .command('verify')
    .description("recompute every account's hash chain (or one account's) and report the first broken link")
    .option('--account <id>', 'verify this account only', uuidArg)
    .option('--json', 'print JSON')
    .action(async (o: { account?: string; json?: boolean }) =>
      local('audit verify', async ({ services }) => {
        // Events still waiting for their link (a crash between commit and linking) are linked
        // first, as the server's link sweep would: they are committed facts, and verification covers them.
        const v = await services.chain.verify({ accountId: o.account });
        const b = v.firstBreak;
        const waiting = v.linkedFirst;
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
    .option('--account <id>', 'export this account only', uuidArg)
    .option('--after-seq <n>', 'only events after this seq (incremental archives; with --account)', '0')
    .option('--json', 'errors as JSON (the export itself is JSON lines)')
    .action(async (o: { account?: string; afterSeq: string }) =>
      local('audit export', async ({ services }) => {
        const ids = o.account ? [(await services.portal.getAccount(o.account)).id] : services.chain.accountIds();
        for await (const id of ids) {
          for await (const e of services.chain.exportAccount(id, o.account ? Number(o.afterSeq) || 0 : 0)) {
            const line = { ...eventWireFields(e), seq: e.seq, prev_hash: e.prevHash, hash: e.hash };
            if (!process.stdout.write(`${JSON.stringify(line)}\n`)) await new Promise((r) => process.stdout.once('drain', r));
          }
        }
      }),
    );
}

import type { Command } from 'commander';
import { DomainError } from '../domain/errors.js';
import { eventWireFields } from '../domain/audit/chain-hash.js';
import { isUuid } from '../domain/ids.js';
import { CliExit, print, withServices } from './runtime.js';

/** `audit verify` exits with this when a chain is broken (1 is any other error, 2 a usage error). */
export const EXIT_CHAIN_BROKEN = 3;

/** audit verify and audit export: the compliance log, checked and archived. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the compliance log (hash-chained, append-only)');
  audit
    .command('verify')
    .description("recompute every account's hash chain (or one account's) and report the first broken link")
    .option('--account <id>', 'verify this account only')
    .option('--json', 'print JSON')
    .action(async (o: { account?: string; json?: boolean }) =>
      withServices(async ({ services }) => {
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
    .option('--account <id>', 'export this account only')
    .option('--after-seq <n>', 'only events after this seq (incremental archives; with --account)', '0')
    .action(async (o: { account?: string; afterSeq: string }) =>
      withServices(async ({ services }) => {
        if (o.account && !isUuid(o.account)) throw new DomainError('not_found');
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

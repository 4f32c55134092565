import type { Command } from 'commander';
import type { VerifyAnswer } from '../http/routes/verify.schemas.js';
import { EXIT } from './exit-codes.js';
import { CliExit, dispatch, print, readStdin } from './runtime.js';

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

/** `keyplane verify`: POST /internal/v1/verify from a shell (exit 0 valid, 1 not, 4 database unreachable). */
export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('verify an API key for a data-plane action, as POST /internal/v1/verify does (exit 0 valid, 1 not, 4 unavailable)')
    .argument('<key>', "the API key (sk_test_…/sk_live_…), or '-' to read it from stdin")
    .requiredOption('--verb <verb>', 'read, call, sms or admin')
    .option('--line-id <uuid>', 'the line the action targets')
    .option('--cost-cents <n>', 'debit this many cents from the monthly cap (needs --request-id)')
    .option('--request-id <id>', 'idempotency of the debit: a repeated id debits once')
    .option('--json', 'print JSON')
    .action(async (key: string, o: { verb: string; lineId?: string; costCents?: string; requestId?: string; json?: boolean }, cmd: Command) => {
      // Loaded here, not at the top: every other command starts without them.
      const { verifyAnswer, verifyBody } = await import('../http/routes/verify.schemas.js');
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
      // The same JSON as POST /internal/v1/verify answers, computed here or answered by the server.
      const answer = await dispatch<VerifyAnswer>('verify', {
        readOnly: true,
        local: async ({ services }) =>
          verifyAnswer(await services.verify.verify({ key: b.key, verb: b.verb, lineId: b.line_id ?? null, costCents: b.cost_cents, requestId: b.request_id }, new Date())),
        remote: (api) => api.call('POST', '/verify', { body: b }),
      });
      print(!!o.json, answer, describeVerify(answer));
      if (!answer.valid) throw new CliExit(EXIT.no);
    });
}

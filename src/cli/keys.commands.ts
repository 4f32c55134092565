import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import type { Services } from '../domain/services.js';
import type { OperatorKeyView } from '../domain/operator/operator-keys.js';
import { MAX_LEAKED_TOKENS, type LeakResult, type RevokeOutcome } from '../domain/operator/operator-revocation.js';
import { cliContext, dispatch, print, readStdin, uuidArg } from './runtime.js';

/*
 * keyplane keys: the operator's reach over every key, from a shell (the same domain code as
 * /internal/v1/accounts/{id}/keys, /internal/v1/keys/{id} and /internal/v1/keys/revoke-leaked),
 * acting on the configured database with the actor prefix 'cli', or (--url) through those routes.
 */

const line = (k: OperatorKeyView) => `${k.id}  ${k.kind.padEnd(7)}  ${k.key_prefix.padEnd(20)}  ${k.environment}  ${k.status.padEnd(7)}  ${k.name}`;

function describeKey(k: OperatorKeyView): string {
  const fields = Object.entries(k).filter(([, v]) => v !== null);
  return fields.map(([name, v]) => `${name.padEnd(26)} ${String(v)}`).join('\n');
}

function describeRevoke(id: string, r: RevokeOutcome): string {
  const what = `${r.key.kind} key ${id} (${r.key.key_prefix}) ${r.revoked ? 'revoked' : 'was already revoked'}`;
  if (!r.children) return what;
  return `${what}; child keys of its chain: ${r.children.revoked} revoked now, ${r.children.live} live`;
}

function describeLeaks(results: LeakResult[]): string {
  const rows = results.map((r) => {
    const state = !r.found ? 'not found' : r.revoked ? 'revoked' : 'already revoked';
    return `${(r.prefix ?? '(not a keyplane key)').padEnd(20)}  ${state.padEnd(15)}  ${r.key_id ?? ''}`;
  });
  const revoked = results.filter((r) => r.revoked).length;
  const found = results.filter((r) => r.found).length;
  return [...rows, `${results.length} token(s): ${found} found, ${revoked} revoked now`].join('\n');
}

/** The tokens of a leak report: one a line, surrounding blanks trimmed, blank lines ignored. */
function tokensOf(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

/** Splits a report into requests of at most MAX_LEAKED_TOKENS, as the route takes them. */
const batches = (tokens: string[]) => Array.from({ length: Math.ceil(tokens.length / MAX_LEAKED_TOKENS) }, (_, i) => tokens.slice(i * MAX_LEAKED_TOKENS, (i + 1) * MAX_LEAKED_TOKENS));

interface ListOptions {
  account: string;
  status: 'active' | 'revoked' | 'all';
  prefix?: string;
  kind?: 'service' | 'child' | 'portal';
  limit: string;
  cursor?: string;
  json?: boolean;
}

/** keys list|show|revoke|rotate|suspend|resume|revoke-leaked. */
export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description('every key of every account, of any kind: find, show, revoke, leak intake');
  keys
    .command('list')
    .description("list an account's keys (service, child and portal keys), newest first")
    .requiredOption('--account <id>', 'account id', uuidArg)
    .addOption(new Option('--status <status>', 'active, revoked or all').choices(['active', 'revoked', 'all']).default('all'))
    .option('--prefix <prefix>', 'keys whose key_prefix starts with this')
    .addOption(new Option('--kind <kind>', 'service, child or portal').choices(['service', 'child', 'portal']))
    .option('--limit <n>', 'keys per page (1-100)', '50')
    .option('--cursor <cursor>', 'the next_cursor of the previous page')
    .option('--json', 'print JSON')
    .action(async (o: ListOptions, cmd: Command) => {
      const { accountKeysQuery } = await import('../http/routes/operator-keys.schemas.js');
      const parsed = accountKeysQuery.safeParse({ status: o.status, prefix: o.prefix, kind: o.kind, limit: o.limit, cursor: o.cursor });
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
        cmd.error(`keyplane keys list: ${why}`, { exitCode: 2, code: 'commander.invalidArgument' });
      }
      const q = parsed.data!;
      type Page = Awaited<ReturnType<Services['operatorKeys']['list']>>;
      const page = await dispatch<Page>('keys list', {
        readOnly: true,
        local: ({ services }) => services.operatorKeys.list(o.account, q),
        remote: (api) =>
          api.call('GET', `/accounts/${o.account}/keys`, { query: { status: q.status, prefix: q.prefix, kind: q.kind, limit: String(q.limit), cursor: q.cursor } }),
      });
      const more = page.next_cursor ? `\nmore: --cursor ${page.next_cursor}` : '';
      print(!!o.json, page, (page.keys.map(line).join('\n') || '(none)') + more);
    });
  keys
    .command('show')
    .description('show one key of any kind and account (never a secret)')
    .argument('<id>', 'key id', uuidArg)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const { key } = await dispatch<{ key: OperatorKeyView }>('keys show', {
        readOnly: true,
        local: async ({ services }) => ({ key: await services.operatorKeys.get(id) }),
        remote: (api) => api.call('GET', `/keys/${id}`),
      });
      print(!!o.json, { key }, describeKey(key));
    });
  keys
    .command('revoke')
    .description("revoke a key of any kind; a service key with live children needs --children")
    .argument('<id>', 'key id', uuidArg)
    .addOption(new Option('--children <choice>', "a service key's child keys: keep them valid, or revoke them with it").choices(['keep', 'revoke']))
    .addOption(new Option('--leaked', 'revoke it as leaked (reason "leaked"; a service key\'s children are kept)').conflicts('children'))
    .option('--json', 'print JSON')
    .action(async (id: string, o: { children?: 'keep' | 'revoke'; leaked?: boolean; json?: boolean }) => {
      const outcome = await dispatch<RevokeOutcome>('keys revoke', {
        local: ({ services }) => (o.leaked ? services.operatorKeys.revokeAsLeaked(id, cliContext()) : services.operatorKeys.revoke(id, o.children, cliContext())),
        remote: (api) => (o.leaked ? api.call('POST', `/keys/${id}/revoke-leaked`) : api.call('DELETE', `/keys/${id}`, { query: { children: o.children } })),
      });
      print(!!o.json, outcome, describeRevoke(id, outcome));
    });
  keys
    .command('rotate')
    .description('rotate a child key on behalf of its service key; the old key keeps working for --overlap seconds')
    .argument('<id>', 'child key id', uuidArg)
    .option('--overlap <seconds>', 'seconds the old key keeps working (0 to 604800)', '0')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { overlap: string; json?: boolean }, cmd: Command) => {
      const overlap = Number(o.overlap);
      if (!Number.isInteger(overlap) || overlap < 0 || overlap > 604_800) cmd.error('keyplane keys rotate: --overlap must be 0 to 604800', { exitCode: 2, code: 'commander.invalidArgument' });
      type Rotated = { key: OperatorKeyView & { plaintext_key: string }; rotated: OperatorKeyView };
      const out = await dispatch<Rotated>('keys rotate', {
        local: async ({ services }) => {
          const r = await services.operatorKeys.rotate(id, overlap, cliContext());
          return { key: { ...r.key, plaintext_key: r.plaintext }, rotated: r.old };
        },
        remote: (api) => api.call('POST', `/keys/${id}/rotate`, { body: { overlap_seconds: overlap } }),
      });
      const until = out.rotated.revoked_at && overlap > 0 ? `; the old key works until ${out.rotated.revoked_at}` : '';
      print(!!o.json, out, `child key ${id} rotated to ${out.key.id} (${out.key.key_prefix})${until}\n${out.key.plaintext_key}\nShown once: store it now.`);
    });
  for (const suspend of [true, false]) {
    const command = keys
      .command(suspend ? 'suspend' : 'resume')
      .description(suspend ? 'suspend an API key: refused from the next request on, until resumed' : 'resume a suspended API key')
      .argument('<id>', 'key id', uuidArg)
      .option('--json', 'print JSON');
    if (suspend) command.option('--reason <text>', 'why, kept in the agent_key_suspended event');
    command.action(async (id: string, o: { reason?: string; json?: boolean }) => {
      const verb = suspend ? 'suspend' : 'resume';
      const out = await dispatch<{ key: OperatorKeyView; changed: boolean }>(`keys ${verb}`, {
        local: ({ services }) => services.operatorKeys.setSuspension(id, { suspend, reason: o.reason }, cliContext()),
        remote: (api) => api.call('POST', `/keys/${id}/${verb}`, suspend && o.reason ? { body: { reason: o.reason } } : {}),
      });
      const what = out.changed ? (suspend ? 'suspended' : 'resumed') : suspend ? 'was already suspended' : 'was not suspended';
      print(!!o.json, out, `${out.key.kind} key ${id} (${out.key.key_prefix}) ${what}`);
    });
  }
  keys
    .command('revoke-leaked')
    .description('revoke every live key named by the leaked tokens given, one per line')
    .argument('<file>', "a file of tokens, or '-' to read them from stdin")
    .option('--json', 'print JSON')
    .action(async (file: string, o: { json?: boolean }, cmd: Command) => {
      const tokens = tokensOf(file === '-' ? await readStdin() : await readFile(file, 'utf8'));
      if (tokens.length === 0) cmd.error('keyplane keys revoke-leaked: no tokens given', { exitCode: 2, code: 'commander.invalidArgument' });
      const results = await dispatch<LeakResult[]>('keys revoke-leaked', {
        local: async ({ services }) => {
          const out: LeakResult[] = [];
          for (const batch of batches(tokens)) out.push(...(await services.operatorKeys.revokeLeaked(batch, cliContext())));
          return out;
        },
        remote: async (api) => {
          const out: LeakResult[] = [];
          for (const batch of batches(tokens)) out.push(...(await api.call<{ results: LeakResult[] }>('POST', '/keys/revoke-leaked', { body: { tokens: batch } })).results);
          return out;
        },
      });
      print(!!o.json, { results }, describeLeaks(results));
    });
}

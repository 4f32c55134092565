import { Option, type Command } from 'commander';
import type { OperatorTokenView } from '../domain/operator-tokens/operator-tokens.service.js';
import { cliContext, isRemote, notRemote, print, withReadOnlyServices, withServices } from './runtime.js';

const line = (t: OperatorTokenView) => `${t.id}  ${t.key_prefix}  ${t.scope.padEnd(6)}  ${t.revoked_at ? 'revoked' : 'active '}  ${t.name}`;

/**
 * operator-tokens create|list|revoke: the admin listener's named tokens (kpo_…). Only here, not on
 * the internal API: minting a credential for the API from inside it would let any admin token
 * make more of itself; the CLI needs the database itself, so --url is refused (not_available_remotely).
 * `create` works before the first start (it migrates), which is one way to the first admin token.
 */
const local = <T>(name: string, fn: () => Promise<T>): Promise<T> => (isRemote() ? Promise.reject(notRemote(`operator-tokens ${name}`)) : fn());

export function registerOperatorTokenCommands(program: Command): void {
  const ot = program.command('operator-tokens').description('named operator tokens for the admin listener (kpo_…), scope admin, verify or metrics');
  ot.command('create')
    .requiredOption('--name <name>', 'a name of letters, digits, dots, dashes or underscores (unique among live tokens)')
    .addOption(new Option('--scope <scope>', 'admin: the whole internal API; verify: only POST /internal/v1/verify; metrics: only GET /metrics').choices(['admin', 'verify', 'metrics']).makeOptionMandatory())
    .option('--json', 'print JSON')
    .action(async (o: { name: string; scope: 'admin' | 'verify' | 'metrics'; json?: boolean }) =>
      local('create', () => withServices(async ({ services }) => {
        const t = await services.operatorTokens.create({ name: o.name, scope: o.scope }, cliContext());
        print(!!o.json, t, `operator token ${t.id} (${t.name}, scope ${t.scope}, ${t.key_prefix})\n${t.plaintext_key}\nShown once: store it now.`);
      })),
    );
  ot.command('list')
    .description('every operator token, live ones first (never a secret)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) =>
      local('list', () => withReadOnlyServices(async ({ services }) => {
        const tokens = await services.operatorTokens.list();
        print(!!o.json, { operator_tokens: tokens }, tokens.map(line).join('\n') || '(none)');
      })),
    );
  ot.command('revoke')
    .argument('<id|name>', "the live token's id or name")
    .option('--json', 'print JSON')
    .action(async (idOrName: string, o: { json?: boolean }) =>
      local('revoke', () => withServices(async ({ services }) => {
        const t = await services.operatorTokens.revoke(idOrName, cliContext());
        print(!!o.json, t, `operator token ${t.id} (${t.name}) revoked`);
      })),
    );
}

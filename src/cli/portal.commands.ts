import { Argument, Option, type Command } from 'commander';
import { REUSE_REACTIONS, type ReuseReaction } from '../domain/portal/accounts.js';
import { cliContext, print, withServices } from './runtime.js';

const environmentOption = () => new Option('--environment <env>', 'test or live').choices(['test', 'live']).default('test');
const issuedSecretText = (id: string, prefix: string, plaintext: string, what: string) => `${what} ${id} (${prefix})\n${plaintext}\nShown once: store it now.`;

type Env = 'test' | 'live';

/** bootstrap, accounts, service-keys and api-keys: what the portal backend does, from a shell. */
export function registerPortalCommands(program: Command): void {
  registerBootstrap(program);
  registerAccounts(program);
  registerServiceKeys(program);
  registerApiKeys(program);
}

function registerBootstrap(program: Command): void {
  program
    .command('bootstrap')
    .description('create a test account with one service key and one portal API key, for a smoke test')
    .option('--json', 'print JSON')
    .option('--name <name>', 'account name', 'bootstrap')
    .action(async (o: { json?: boolean; name: string }) =>
      withServices(async ({ services, config }) => {
        const out = await services.portal.bootstrap(cliContext(), o.name);
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
}

function registerAccounts(program: Command): void {
  const accounts = program.command('accounts').description('accounts');
  accounts
    .command('create')
    .requiredOption('--name <name>', 'account name')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; json?: boolean }) =>
      withServices(async ({ services }) => {
        const a = await services.portal.createAccount(o.name, cliContext());
        print(!!o.json, a, `account ${a.id} created`);
      }),
    );
  accounts
    .command('set-reuse-reaction')
    .description("what a copied self-rotation pair coming back does: revoke_chain (default) or report")
    .argument('<account-id>', 'account id')
    .addArgument(new Argument('<reaction>', 'revoke_chain or report').choices(REUSE_REACTIONS))
    .option('--json', 'print JSON')
    .action(async (accountId: string, reaction: ReuseReaction, o: { json?: boolean }) =>
      withServices(async ({ services }) => {
        const a = await services.portal.setReuseReaction(accountId, reaction, cliContext());
        print(!!o.json, a, `account ${a.id}: reuse reaction ${a.reuse_reaction}`);
      }),
    );
}

function registerServiceKeys(program: Command): void {
  const sk = program.command('service-keys').description('service keys (sk_svc_…)');
  sk.command('create')
    .requiredOption('--account <id>', 'account id')
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'service key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: Env; name: string; json?: boolean }) =>
      withServices(async ({ services }) => {
        const k = await services.portal.createServiceKey({ accountId: o.account, environment: o.environment, name: o.name }, cliContext());
        print(!!o.json, k, issuedSecretText(k.id, k.key_prefix, k.plaintext_key, 'service key'));
      }),
    );
  sk.command('list')
    .requiredOption('--account <id>', 'account id')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; json?: boolean }) =>
      withServices(async ({ services }) => {
        const keys = await services.portal.listServiceKeys(o.account);
        const human = keys.map((r) => `${r.id}  ${r.key_prefix}  ${r.environment}  ${r.revoked_at ? 'revoked' : 'active'}  ${r.name}`);
        print(!!o.json, { service_keys: keys }, human.join('\n') || '(none)');
      }),
    );
  sk.command('rotate')
    .argument('<id>', 'service key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withServices(async ({ services }) => {
        const k = await services.portal.rotateServiceKey(id, cliContext());
        print(!!o.json, k, `service key ${id} rotated to ${k.id} (${k.key_prefix})\n${k.plaintext_key}\nShown once: store it now.`);
      }),
    );
  sk.command('revoke')
    .argument('<id>', 'service key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withServices(async ({ services }) => print(!!o.json, await services.portal.revokeServiceKey(id, cliContext()), `service key ${id} revoked`)),
    );
}

function registerApiKeys(program: Command): void {
  const ak = program.command('api-keys').description('portal API keys (sk_test_…/sk_live_…, legacy_full)');
  ak.command('create')
    .requiredOption('--account <id>', 'account id')
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'portal key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: Env; name: string; json?: boolean }) =>
      withServices(async ({ services }) => {
        const k = await services.portal.createPortalApiKey({ accountId: o.account, environment: o.environment, name: o.name }, cliContext());
        print(!!o.json, k, issuedSecretText(k.id, k.key_prefix, k.plaintext_key, 'api key'));
      }),
    );
  ak.command('revoke')
    .argument('<id>', 'api key id')
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) =>
      withServices(async ({ services }) => print(!!o.json, await services.portal.revokePortalApiKey(id, cliContext()), `api key ${id} revoked`)),
    );
}

import { Argument, Option, type Command } from 'commander';
import { REUSE_REACTIONS, type ReuseReaction } from '../domain/portal/accounts.js';
import { cliContext, dispatch, print, uuidArg } from './runtime.js';

const environmentOption = () => new Option('--environment <env>', 'test or live').choices(['test', 'live']).default('test');
const issuedSecretText = (id: string, prefix: string, plaintext: string, what: string) => `${what} ${id} (${prefix})\n${plaintext}\nShown once: store it now.`;

type Env = 'test' | 'live';
interface Issued {
  id: string;
  key_prefix: string;
  plaintext_key: string;
}

/**
 * bootstrap, accounts, service-keys and api-keys: what the portal backend does, from a shell, on
 * the database or (--url) through the internal API's portal routes, printing the same either way.
 */
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
    .action(async (o: { json?: boolean; name: string }) => {
      type Boot = { account_id: string; environment: 'test'; service_key: string; api_key: string };
      const out = await dispatch<Boot>('bootstrap', {
        local: ({ services }) => services.portal.bootstrap(cliContext(), o.name),
        remote: (api) => api.call('POST', '/bootstrap', { body: { name: o.name } }),
      });
      const base = `http://localhost:${process.env.PORT ?? 8080}`;
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
    });
}

function registerAccounts(program: Command): void {
  const accounts = program.command('accounts').description('accounts');
  accounts
    .command('create')
    .requiredOption('--name <name>', 'account name')
    .option('--json', 'print JSON')
    .action(async (o: { name: string; json?: boolean }) => {
      const a = await dispatch<{ id: string }>('accounts create', {
        local: ({ services }) => services.portal.createAccount(o.name, cliContext()),
        remote: async (api) => (await api.call<{ account: { id: string } }>('POST', '/accounts', { body: { name: o.name } })).account,
      });
      print(!!o.json, a, `account ${a.id} created`);
    });
  accounts
    .command('set-reuse-reaction')
    .description("what a copied self-rotation pair coming back does: revoke_chain (default) or report")
    .argument('<account-id>', 'account id', uuidArg)
    .addArgument(new Argument('<reaction>', 'revoke_chain or report').choices(REUSE_REACTIONS))
    .option('--json', 'print JSON')
    .action(async (accountId: string, reaction: ReuseReaction, o: { json?: boolean }) => {
      type Settings = { id: string; reuse_reaction: string };
      const a = await dispatch<Settings>('accounts set-reuse-reaction', {
        local: ({ services }) => services.portal.setReuseReaction(accountId, reaction, cliContext()),
        remote: async (api) => (await api.call<{ account: Settings }>('PATCH', `/accounts/${accountId}`, { body: { reuse_reaction: reaction } })).account,
      });
      print(!!o.json, a, `account ${a.id}: reuse reaction ${a.reuse_reaction}`);
    });
}

function registerServiceKeys(program: Command): void {
  const sk = program.command('service-keys').description('service keys (sk_svc_…)');
  sk.command('create')
    .requiredOption('--account <id>', 'account id', uuidArg)
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'service key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: Env; name: string; json?: boolean }) => {
      const body = { environment: o.environment, name: o.name };
      const k = await dispatch<Issued>('service-keys create', {
        local: ({ services }) => services.portal.createServiceKey({ accountId: o.account, ...body }, cliContext()),
        remote: async (api) => (await api.call<{ service_key: Issued }>('POST', `/accounts/${o.account}/service-keys`, { body })).service_key,
      });
      print(!!o.json, k, issuedSecretText(k.id, k.key_prefix, k.plaintext_key, 'service key'));
    });
  sk.command('list')
    .requiredOption('--account <id>', 'account id', uuidArg)
    .option('--json', 'print JSON')
    .action(async (o: { account: string; json?: boolean }) => {
      type Row = { id: string; key_prefix: string; environment: string; revoked_at: unknown; name: string };
      const keys = await dispatch<Row[]>('service-keys list', {
        readOnly: true,
        local: ({ services }) => services.portal.listServiceKeys(o.account),
        remote: async (api) => (await api.call<{ service_keys: Row[] }>('GET', `/accounts/${o.account}/service-keys`)).service_keys,
      });
      const human = keys.map((r) => `${r.id}  ${r.key_prefix}  ${r.environment}  ${r.revoked_at ? 'revoked' : 'active'}  ${r.name}`);
      print(!!o.json, { service_keys: keys }, human.join('\n') || '(none)');
    });
  sk.command('rotate')
    .argument('<id>', 'service key id', uuidArg)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const k = await dispatch<Issued>('service-keys rotate', {
        local: ({ services }) => services.portal.rotateServiceKey(id, cliContext()),
        remote: async (api) => (await api.call<{ service_key: Issued }>('POST', `/service-keys/${id}/rotate`)).service_key,
      });
      print(!!o.json, k, `service key ${id} rotated to ${k.id} (${k.key_prefix})\n${k.plaintext_key}\nShown once: store it now.`);
    });
  sk.command('revoke')
    .argument('<id>', 'service key id', uuidArg)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const k = await dispatch<object>('service-keys revoke', {
        local: ({ services }) => services.portal.revokeServiceKey(id, cliContext()),
        remote: async (api) => (await api.call<{ service_key: object }>('DELETE', `/service-keys/${id}`)).service_key,
      });
      print(!!o.json, k, `service key ${id} revoked`);
    });
}

function registerApiKeys(program: Command): void {
  const ak = program.command('api-keys').description('portal API keys (sk_test_…/sk_live_…, legacy_full)');
  ak.command('create')
    .requiredOption('--account <id>', 'account id', uuidArg)
    .addOption(environmentOption())
    .option('--name <name>', 'key name', 'portal key')
    .option('--json', 'print JSON')
    .action(async (o: { account: string; environment: Env; name: string; json?: boolean }) => {
      const body = { environment: o.environment, name: o.name };
      const k = await dispatch<Issued>('api-keys create', {
        local: ({ services }) => services.portal.createPortalApiKey({ accountId: o.account, ...body }, cliContext()),
        remote: async (api) => (await api.call<{ api_key: Issued }>('POST', `/accounts/${o.account}/api-keys`, { body })).api_key,
      });
      print(!!o.json, k, issuedSecretText(k.id, k.key_prefix, k.plaintext_key, 'api key'));
    });
  ak.command('revoke')
    .argument('<id>', 'api key id', uuidArg)
    .option('--json', 'print JSON')
    .action(async (id: string, o: { json?: boolean }) => {
      const k = await dispatch<object>('api-keys revoke', {
        local: ({ services }) => services.portal.revokePortalApiKey(id, cliContext()),
        remote: async (api) => (await api.call<{ api_key: object }>('DELETE', `/api-keys/${id}`)).api_key,
      });
      print(!!o.json, k, `api key ${id} revoked`);
    });
}

import type { AccountRow, ApiKeyRow, ServiceKeyRow } from '../../db/schema.js';
import type { EventStore } from '../audit/events.js';
import type { Environment } from '../auth/credentials.js';
import type { OpContext } from '../context.js';
import { createAccount, getAccount, setAccountReuseReaction, type ReuseReaction } from './accounts.js';
import { createPortalApiKey, revokePortalApiKey } from './portal-keys.js';
import { accountSettingsView, accountView, portalKeyView, serviceKeyView, type Issued, type IssuedView } from './portal-views.js';
import { createServiceKey, listServiceKeys, revokeServiceKey, rotateServiceKey } from './service-keys.js';

/*
 * What the portal backend does (spec §9), shared by the internal HTTP API and the CLI: accounts
 * (accounts.ts), service keys (service-keys.ts), and portal API keys, permissions legacy_full
 * (portal-keys.ts). Each write records its compliance event in the same transaction. Plaintexts
 * are generated before the transaction opens and returned once; only their hashes are stored.
 */

// The operations on rows, for tests and the bench that set up accounts without the views.
export { createAccount, createPortalApiKey, createServiceKey, revokeServiceKey };

interface Bootstrap {
  account: AccountRow;
  serviceKey: Issued<ServiceKeyRow>;
  apiKey: Issued<ApiKeyRow>;
}

/** A ready-to-use test account for a smoke test: one test service key, one test portal API key. */
async function bootstrap(store: EventStore, ctx: OpContext, name = 'bootstrap'): Promise<Bootstrap> {
  const account = await createAccount(store, name, ctx);
  const serviceKey = await createServiceKey(store, { accountId: account.id, environment: 'test', name: 'bootstrap service key' }, ctx);
  const apiKey = await createPortalApiKey(store, { accountId: account.id, environment: 'test', name: 'bootstrap api key' }, ctx);
  return { account, serviceKey, apiKey };
}

type KeyInput = { accountId: string; environment: Environment; name: string };

/** The portal backend's operations (internal API and CLI), answering with the views they show. */
export function createPortalService(store: EventStore) {
  const issued = <R, V>(i: Issued<R>, view: (row: R) => V): IssuedView<V> => ({ ...view(i.row), plaintext_key: i.plaintext });
  return {
    createAccount: async (name: string, ctx: OpContext) => accountView(await createAccount(store, name, ctx)),
    getAccount: async (accountId: string) => accountView(await getAccount(store.db, accountId)),
    setReuseReaction: async (accountId: string, reaction: ReuseReaction, ctx: OpContext) =>
      accountSettingsView(await setAccountReuseReaction(store, accountId, reaction, ctx)),
    createServiceKey: async (input: KeyInput, ctx: OpContext) => issued(await createServiceKey(store, input, ctx), serviceKeyView),
    listServiceKeys: async (accountId: string) => (await listServiceKeys(store.db, accountId)).map(serviceKeyView),
    rotateServiceKey: async (id: string, ctx: OpContext) => issued(await rotateServiceKey(store, id, ctx), serviceKeyView),
    revokeServiceKey: async (id: string, ctx: OpContext) => serviceKeyView(await revokeServiceKey(store, id, ctx)),
    createPortalApiKey: async (input: KeyInput, ctx: OpContext) => issued(await createPortalApiKey(store, input, ctx), portalKeyView),
    revokePortalApiKey: async (id: string, ctx: OpContext) => portalKeyView(await revokePortalApiKey(store, id, ctx)),
    async bootstrap(ctx: OpContext, name?: string) {
      const b = await bootstrap(store, ctx, name);
      return { account_id: b.account.id, environment: 'test' as const, service_key: b.serviceKey.plaintext, api_key: b.apiKey.plaintext };
    },
  };
}

export type PortalService = ReturnType<typeof createPortalService>;

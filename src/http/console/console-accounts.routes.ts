import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OpContext } from '../../domain/context.js';
import { operatorContext } from '../plugins/operator-context.js';
import { displayName } from '../routes/common.schemas.js';
import { csrfOf, plaintextOnce, sendPage, type ConsoleOptions } from './console-common.js';
import { actionForm, csrfField, html, when, type Html } from './html.js';
import { statusBadge } from './key-views.js';

const idParams = z.object({ id: z.uuid() });
const searchQuery = z.object({ q: z.string().max(200).optional() });
const csrfBody = z.object({ _csrf: z.string().max(200) });
const createAccountForm = csrfBody.extend({ name: displayName });
const createKeyForm = csrfBody.extend({ name: displayName, environment: z.enum(['test', 'live']) });
const revokeServiceKeyForm = csrfBody.extend({ children: z.enum(['keep', 'revoke']) });

const envSelect = html`<label for="environment">Environment</label><select id="environment" name="environment"><option value="test">test</option><option value="live">live</option></select>`;

/** Accounts: the list with search, creation, and one account's service keys and portal keys. */
export async function consoleAccountRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { services } = opts;
  const ctx = (request: FastifyRequest): OpContext => operatorContext(request, opts.clock);

  r.get('/accounts', { schema: { querystring: searchQuery } }, async (request, reply) => {
    const accounts = await services.console.listAccounts(request.query.q ?? null);
    const rows = accounts.map((a) => html`<tr><td><a href="/console/accounts/${a.id}">${a.name}</a></td><td><code>${a.id}</code></td><td>${when(a.created_at)}</td></tr>`);
    return sendPage(request, reply, 'Accounts', html`
<form method="get" action="/console/accounts" class="row" role="search"><label for="q">Search by name or id</label><input id="q" name="q" value="${request.query.q ?? ''}"><button type="submit">Search</button></form>
<div class="scroll"><table><caption>Accounts, newest first (50 at most)</caption><thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Created (UTC)</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="3">No account matches.</td></tr>`}</tbody></table></div>
<form method="post" action="/console/accounts" class="card row">${csrfField(csrfOf(request))}<label for="name">New account's name</label><input id="name" name="name" required maxlength="200"><button type="submit">Create account</button></form>`);
  });

  r.post('/accounts', { schema: { body: createAccountForm } }, async (request, reply) => {
    const account = await services.portal.createAccount(request.body.name, ctx(request));
    return reply.redirect(`/console/accounts/${account.id}`, 303);
  });

  r.get('/accounts/:id', { schema: { params: idParams } }, (request, reply) => accountPage(opts, request, reply, request.params.id, null));

  r.post('/accounts/:id/service-keys', { schema: { params: idParams, body: createKeyForm } }, async (request, reply) => {
    const { name, environment } = request.body;
    const sk = await services.portal.createServiceKey({ accountId: request.params.id, name, environment }, ctx(request));
    return accountPage(opts, request, reply, request.params.id, plaintextOnce(`Service key "${sk.name}" issued`, sk.plaintext_key), 201);
  });

  r.post('/accounts/:id/portal-keys', { schema: { params: idParams, body: createKeyForm } }, async (request, reply) => {
    const { name, environment } = request.body;
    const pk = await services.portal.createPortalApiKey({ accountId: request.params.id, name, environment }, ctx(request));
    return accountPage(opts, request, reply, request.params.id, plaintextOnce(`Portal key "${pk.name}" issued`, pk.plaintext_key), 201);
  });

  r.post('/service-keys/:id/rotate', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const sk = await services.portal.rotateServiceKey(request.params.id, ctx(request));
    return accountPage(opts, request, reply, sk.account_id, plaintextOnce(`Service key "${sk.name}" rotated: its successor`, sk.plaintext_key), 201);
  });

  r.post('/service-keys/:id/revoke', { schema: { params: idParams, body: revokeServiceKeyForm } }, async (request, reply) => {
    const out = await services.operatorKeys.revoke(request.params.id, request.body.children, ctx(request));
    return reply.redirect(`/console/accounts/${out.key.account_id}`, 303);
  });
}

type Reply = Parameters<typeof sendPage>[1];

async function accountPage(opts: ConsoleOptions, request: FastifyRequest, reply: Reply, accountId: string, issued: Html | null, status = 200) {
  const { services } = opts;
  const account = await services.portal.getAccount(accountId);
  const serviceKeys = await services.portal.listServiceKeys(account.id);
  const portal = await services.operatorKeys.list(account.id, { status: 'all', kind: 'portal', limit: 100 });
  const csrf = csrfOf(request);
  const now = opts.clock.now();
  const skRows = serviceKeys.map((k) => {
    const live = !k.revoked_at;
    const revoke = actionForm(`/console/service-keys/${k.id}/revoke`, csrf, 'Revoke', {
      danger: true,
      confirm: `Revoke service key ${k.key_prefix}?`,
      extra: html`<label class="sr" for="children-${k.id}">Its child keys</label><select id="children-${k.id}" name="children"><option value="keep">keep children</option><option value="revoke">revoke children</option></select>`,
    });
    return html`<tr><td><a href="/console/service-keys/${k.id}">${k.name}</a></td><td><code>${k.key_prefix}</code></td><td>${k.environment}</td><td>${statusBadge(k, now)}</td><td>${when(k.created_at)}</td><td>${when(k.last_used_at)}</td>
<td class="actions">${live ? [actionForm(`/console/service-keys/${k.id}/rotate`, csrf, 'Rotate', { confirm: `Rotate ${k.key_prefix}? The old key is revoked.` }), revoke] : ''}</td></tr>`;
  });
  const pkRows = portal.keys.map((k) => html`<tr><td><a href="/console/keys/${k.id}">${k.name}</a></td><td><code>${k.key_prefix}</code></td><td>${k.environment}</td><td>${statusBadge(k, now)}</td><td>${when(k.last_used_at)}</td></tr>`);
  return sendPage(request, reply, account.name, html`${issued}
<p><code>${account.id}</code> · created ${when(account.created_at)} · <a href="/console/accounts/${account.id}/audit">Audit trail</a> · <a href="/console/accounts/${account.id}/activity">Verification activity</a></p>
<h2>Service keys</h2>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Env</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">Actions</th></tr></thead>
<tbody>${skRows.length ? skRows : html`<tr><td colspan="7">No service key yet.</td></tr>`}</tbody></table></div>
<form method="post" action="/console/accounts/${account.id}/service-keys" class="card row">${csrfField(csrf)}<label for="sk-name">Name</label><input id="sk-name" name="name" required maxlength="200" value="service key">${envSelect}<button type="submit">Issue service key</button></form>
<h2>Portal keys</h2>
<div class="scroll"><table><thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Env</th><th scope="col">Status</th><th scope="col">Last used</th></tr></thead>
<tbody>${pkRows.length ? pkRows : html`<tr><td colspan="5">No portal key.</td></tr>`}</tbody></table></div>
<form method="post" action="/console/accounts/${account.id}/portal-keys" class="card row">${csrfField(csrf)}<label for="pk-name">Name</label><input id="pk-name" name="name" required maxlength="200" value="portal key">${html`<label for="pk-env">Environment</label><select id="pk-env" name="environment"><option value="test">test</option><option value="live">live</option></select>`}<button type="submit">Issue portal key</button></form>`, status);
}

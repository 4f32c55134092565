import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OpContext } from '../../domain/context.js';
import { PERMISSIONS } from '../../domain/keys/key-object.js';
import { operatorContext } from '../plugins/operator-context.js';
import { csrfOf, sendPage, type ConsoleOptions } from './console-common.js';
import { actionForm, csrfField, html, when } from './html.js';
import { keyStatusOf, KEY_STATUSES, spendBar, statusBadge } from './key-views.js';

const idParams = z.object({ id: z.uuid() });
const keysQuery = z.object({
  label: z.string().max(200).optional(),
  line: z.string().max(64).optional(),
  permissions: z.enum(['', ...PERMISSIONS]).optional(),
  status: z.enum(['', ...KEY_STATUSES]).optional(),
});
const csrfBody = z.object({ _csrf: z.string().max(200) });
const leaksForm = csrfBody.extend({ tokens: z.string().max(200_000) });

/** A service key's keys with filters, and one key's page with its lineage and actions. */
export async function consoleKeyRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { services } = opts;
  const ctx = (request: FastifyRequest): OpContext => operatorContext(request, opts.clock);

  r.get('/service-keys/:id', { schema: { params: idParams, querystring: keysQuery } }, async (request, reply) => {
    const sk = await services.operatorKeys.get(request.params.id);
    if (sk.kind !== 'service') return reply.redirect(`/console/keys/${sk.id}`, 303);
    const { label, line, permissions, status } = request.query;
    const filter = { label: label || null, lineId: line || null, permissions: permissions || null, status: status === 'live' ? ('active' as const) : status === 'revoked' ? ('revoked' as const) : null };
    const keys = await services.console.childKeys(sk.id, filter, opts.clock.now());
    const rows = keys.map(
      (k) => html`<tr><td><a href="/console/keys/${k.id}">${k.name}</a></td><td><code>${k.key_prefix}</code></td><td>${k.agent_label ?? '—'}</td><td>${k.line_id ?? '—'}</td><td>${k.permissions}</td>
<td>${statusBadge(k)}</td><td>${spendBar(k.monthly_spend_cents, k.monthly_cap_cents)}</td><td>${when(k.last_used_at)}</td></tr>`,
    );
    const opt = (current: string | undefined, v: string, text: string) => html`<option value="${v}"${(current ?? '') === v ? html` selected` : ''}>${text}</option>`;
    return sendPage(request, reply, `Keys of ${sk.name}`, html`
<p><code>${sk.key_prefix}</code> · ${statusBadge(sk)} · <a href="/console/accounts/${sk.account_id}">Account</a> · <a href="/console/keys/${sk.id}/activity">Verification activity</a></p>
<form method="get" class="row" role="search"><label for="label">Label contains</label><input id="label" name="label" value="${label ?? ''}">
<label for="line">Line id</label><input id="line" name="line" value="${line ?? ''}">
<label for="permissions">Permissions</label><select id="permissions" name="permissions">${opt(permissions, '', 'any')}${PERMISSIONS.map((p) => opt(permissions, p, p))}</select>
<label for="status">Status</label><select id="status" name="status">${opt(status, '', 'any')}${KEY_STATUSES.map((s) => opt(status, s, s))}</select><button type="submit">Filter</button></form>
<div class="scroll"><table><caption>Keys minted by this service key's rotation chain, newest first (200 at most)</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Prefix</th><th scope="col">Label</th><th scope="col">Line</th><th scope="col">Permissions</th><th scope="col">Status</th><th scope="col">Spend (30 days)</th><th scope="col">Last used</th></tr></thead>
<tbody>${rows.length ? rows : html`<tr><td colspan="8">No key matches.</td></tr>`}</tbody></table></div>`);
  });

  r.get('/keys/:id', { schema: { params: idParams } }, async (request, reply) => {
    const key = await services.operatorKeys.get(request.params.id);
    if (key.kind === 'service') return reply.redirect(`/console/service-keys/${key.id}`, 303);
    const chain = await services.console.agentChain(key.account_id, key.id, opts.clock.now());
    const csrf = csrfOf(request);
    const steps = chain.map(
      ({ key: k, rotated_by }) =>
        html`<li${k.id === key.id ? html` aria-current="true" class="current"` : ''}><a href="/console/keys/${k.id}"><code>${k.key_prefix}</code></a> ${statusBadge(k)}
<span class="muted">created ${when(k.created_at)}${rotated_by ? ` by ${rotated_by === 'self' ? 'the agent' : 'its service key'}` : ' (first key)'}${k.revoked_at ? `, revoked ${when(k.revoked_at)}` : ''}</span></li>`,
    );
    const live = keyStatusOf(key) !== 'revoked';
    const managed = key.managed_by_service_key_id ?? key.created_by_service_key_id;
    return sendPage(request, reply, `Key ${key.key_prefix}`, html`
<dl class="facts"><dt>Name</dt><dd>${key.name}</dd><dt>Kind</dt><dd>${key.kind}</dd><dt>Status</dt><dd>${statusBadge(key)}</dd><dt>Environment</dt><dd>${key.environment}</dd>
<dt>Permissions</dt><dd>${key.permissions ?? '—'}</dd><dt>Label</dt><dd>${key.agent_label ?? '—'}</dd><dt>Line</dt><dd>${key.line_id ?? '—'}</dd>
<dt>Cap</dt><dd>${key.monthly_cap_cents === null ? 'none' : `${key.monthly_cap_cents} cents / 30 days`}</dd><dt>Created</dt><dd>${when(key.created_at)}</dd><dt>Last used</dt><dd>${when(key.last_used_at)}</dd>
<dt>Account</dt><dd><a href="/console/accounts/${key.account_id}">${key.account_id}</a></dd>
${managed ? html`<dt>Service key</dt><dd><a href="/console/service-keys/${managed}">${managed}</a></dd>` : ''}</dl>
<h2>Lineage</h2><ol class="timeline" aria-label="Rotation chain, oldest first">${steps}</ol>
<h2>Actions</h2>${live ? actionForm(`/console/keys/${key.id}/revoke`, csrf, 'Revoke', { danger: true, confirm: `Revoke ${key.key_prefix}?` }) : html`<p>This key is revoked.</p>`}
<p class="hint">Holding a leaked plaintext? Report it on <a href="/console/leaks">Leaked tokens</a>: whatever key it names is revoked with reason "leaked".</p>
<p><a href="/console/accounts/${key.account_id}/audit?key=${key.id}">This key's audit events</a> · <a href="/console/keys/${key.id}/activity">Verification activity</a></p>`);
  });

  r.post('/keys/:id/revoke', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const out = await services.operatorKeys.revoke(request.params.id, undefined, ctx(request));
    return reply.redirect(`/console/keys/${out.key.id}`, 303);
  });

}

/** The leak intake: leaked plaintexts of any kind, each live key or operator token they name revoked. */
export async function consoleLeakRoutes(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { services } = opts;
  const ctx = (request: FastifyRequest): OpContext => operatorContext(request, opts.clock);

  r.get('/leaks', async (request, reply) => sendPage(request, reply, 'Leaked tokens', leaksFormHtml(csrfOf(request))));

  r.post('/leaks', { schema: { body: leaksForm } }, async (request, reply) => {
    const tokens = request.body.tokens.split(/\s+/).filter(Boolean).slice(0, 1000);
    const results = tokens.length ? await services.operatorKeys.revokeLeaked(tokens, ctx(request)) : [];
    const rows = results.map(
      (x) => html`<tr><td><code>${x.prefix ?? '(not a keyplane token)'}</code></td><td>${x.kind ?? '—'}</td><td>${x.found ? (x.revoked ? 'revoked now' : 'already revoked') : 'no such key'}</td>
<td>${x.key_id && x.kind !== 'operator_token' ? html`<a href="/console/keys/${x.key_id}">${x.key_id}</a>` : (x.key_id ?? '—')}</td></tr>`,
    );
    return sendPage(request, reply, 'Leaked tokens', html`<div class="scroll"><table><caption>Result of the report</caption><thead><tr><th scope="col">Prefix</th><th scope="col">Kind</th><th scope="col">Outcome</th><th scope="col">Key</th></tr></thead><tbody>${rows}</tbody></table></div>${leaksFormHtml(csrfOf(request))}`);
  });
}

function leaksFormHtml(csrf: string) {
  return html`<form method="post" action="/console/leaks" class="card">${csrfField(csrf)}
<label for="tokens">Leaked plaintext tokens, one per line (any kind: service, child, portal or operator token)</label>
<textarea id="tokens" name="tokens" rows="6" required autocomplete="off" spellcheck="false"></textarea>
<button type="submit" class="danger">Revoke as leaked</button></form>`;
}

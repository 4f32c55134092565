import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { OpContext } from '../../domain/context.js';
import { PERMISSIONS } from '../../domain/keys/key-object.js';
import { operatorContext } from '../plugins/operator-context.js';
import type { RotatedBy } from '../../domain/keys/lineage.js';
import { MAX_OVERLAP_SECONDS } from '../../domain/keys/rotation.js';
import type { OperatorKeyView } from '../../domain/operator/operator-keys.js';
import { csrfOf, plaintextOnce, sendPage, type ConsoleOptions } from './console-common.js';
import { actionForm, csrfField, html, when, type Html } from './html.js';
import { actionable, keyStatusOf, KEY_STATUSES, spendBar, statusBadge, type KeyStatus } from './key-views.js';

const idParams = z.object({ id: z.uuid() });
const keysQuery = z.object({
  label: z.string().max(200).optional(),
  line: z.string().max(64).optional(),
  permissions: z.enum(['', ...PERMISSIONS]).optional(),
  status: z.enum(['', ...KEY_STATUSES]).optional(),
});
const csrfBody = z.object({ _csrf: z.string().max(200) });
const suspendForm = csrfBody.extend({ reason: z.string().max(500).optional() });
const rotateForm = csrfBody.extend({ overlap_seconds: z.coerce.number().int().min(0).max(MAX_OVERLAP_SECONDS) });
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
    const filter = { label: label || null, lineId: line || null, permissions: permissions || null, status: status || null };
    const now = opts.clock.now();
    const keys = await services.console.childKeys(sk.id, filter, now);
    const rows = keys.map(
      (k) => html`<tr><td><a href="/console/keys/${k.id}">${k.name}</a></td><td><code>${k.key_prefix}</code></td><td>${k.agent_label ?? '—'}</td><td>${k.line_id ?? '—'}</td><td>${k.permissions}</td>
<td>${statusBadge(k, now)}</td><td>${spendBar(k.monthly_spend_cents, k.monthly_cap_cents)}</td><td>${when(k.last_used_at)}</td></tr>`,
    );
    const opt = (current: string | undefined, v: string, text: string) => html`<option value="${v}"${(current ?? '') === v ? html` selected` : ''}>${text}</option>`;
    return sendPage(request, reply, `Keys of ${sk.name}`, html`
<p><code>${sk.key_prefix}</code> · ${statusBadge(sk, now)} · <a href="/console/accounts/${sk.account_id}">Account</a> · <a href="/console/keys/${sk.id}/activity">Verification activity</a></p>
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
    return keyPage(opts, request, reply, key, null);
  });

  r.post('/keys/:id/revoke', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const out = await services.operatorKeys.revoke(request.params.id, undefined, ctx(request));
    return reply.redirect(`/console/keys/${out.key.id}`, 303);
  });

  r.post('/keys/:id/revoke-leaked', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const out = await services.operatorKeys.revokeAsLeaked(request.params.id, ctx(request));
    return reply.redirect(`/console/keys/${out.key.id}`, 303);
  });

  r.post('/keys/:id/suspend', { schema: { params: idParams, body: suspendForm } }, async (request, reply) => {
    const reason = request.body.reason?.trim() || undefined;
    const out = await services.operatorKeys.setSuspension(request.params.id, { suspend: true, reason }, ctx(request));
    return reply.redirect(`/console/keys/${out.key.id}`, 303);
  });

  r.post('/keys/:id/resume', { schema: { params: idParams, body: csrfBody } }, async (request, reply) => {
    const out = await services.operatorKeys.setSuspension(request.params.id, { suspend: false }, ctx(request));
    return reply.redirect(`/console/keys/${out.key.id}`, 303);
  });

  r.post('/keys/:id/rotate', { schema: { params: idParams, body: rotateForm } }, async (request, reply) => {
    const out = await services.operatorKeys.rotate(request.params.id, request.body.overlap_seconds, ctx(request));
    const overlap = out.old.revoked_at && new Date(out.old.revoked_at) > opts.clock.now() ? `; the old key ${out.old.key_prefix} keeps working until ${when(out.old.revoked_at)} UTC` : '';
    return keyPage(opts, request, reply, out.key, plaintextOnce(`Key ${out.old.key_prefix} rotated: its successor${overlap}`, out.plaintext), 201);
  });
}

type Reply = Parameters<typeof sendPage>[1];

const by = (r: RotatedBy) => (r === 'self' ? 'the agent' : r === 'portal' ? 'an operator' : 'its service key');

async function keyPage(opts: ConsoleOptions, request: FastifyRequest, reply: Reply, key: OperatorKeyView, issued: Html | null, status = 200) {
  const now = opts.clock.now();
  const chain = await opts.services.console.agentChain(key.account_id, key.id, now);
  const steps = chain.map(
    ({ key: k, rotated_by }) =>
      html`<li${k.id === key.id ? html` aria-current="true" class="current"` : ''}><a href="/console/keys/${k.id}"><code>${k.key_prefix}</code></a> ${statusBadge(k, now)}
<span class="muted">created ${when(k.created_at)}${rotated_by ? ` by ${by(rotated_by)}` : ' (first key)'}${k.revoked_at ? `, ${new Date(k.revoked_at) > now ? 'works until' : 'revoked'} ${when(k.revoked_at)}` : ''}</span></li>`,
  );
  const managed = key.managed_by_service_key_id ?? key.created_by_service_key_id;
  return sendPage(request, reply, `Key ${key.key_prefix}`, html`${issued}
<dl class="facts"><dt>Name</dt><dd>${key.name}</dd><dt>Kind</dt><dd>${key.kind}</dd><dt>Status</dt><dd id="key-status">${statusBadge(key, now)}</dd><dt>Environment</dt><dd>${key.environment}</dd>
<dt>Permissions</dt><dd>${key.permissions ?? '—'}</dd><dt>Label</dt><dd>${key.agent_label ?? '—'}</dd><dt>Line</dt><dd>${key.line_id ?? '—'}</dd>
<dt>Cap</dt><dd>${key.monthly_cap_cents === null ? 'none' : `${key.monthly_cap_cents} cents / 30 days`}</dd><dt>Created</dt><dd>${when(key.created_at)}</dd><dt>Last used</dt><dd>${when(key.last_used_at)}</dd>
<dt>Expires</dt><dd>${key.expires_at ? `${when(key.expires_at)} UTC` : 'never'}</dd>${key.suspended_at ? html`<dt>Suspended</dt><dd>${when(key.suspended_at)} UTC</dd>` : ''}
<dt>Account</dt><dd><a href="/console/accounts/${key.account_id}">${key.account_id}</a></dd>
${managed ? html`<dt>Service key</dt><dd><a href="/console/service-keys/${managed}">${managed}</a></dd>` : ''}</dl>
<h2>Lineage</h2><ol class="timeline" aria-label="Rotation chain, oldest first">${steps}</ol>
<h2>Actions</h2>${keyActions(key, keyStatusOf(key, now), csrfOf(request))}
<p><a href="/console/accounts/${key.account_id}/audit?key=${key.id}">This key's audit events</a> · <a href="/console/keys/${key.id}/activity">Verification activity</a></p>`, status);
}

/** The actions the key's status allows (the lifecycle table of docs/api-behaviour.md). */
function keyActions(key: OperatorKeyView, s: KeyStatus, csrf: string): Html {
  if (!actionable(s)) return html`<p>This key is ${s}: nothing more can be done with it.</p>`;
  const base = `/console/keys/${key.id}`;
  const suspend =
    s === 'live' || s === 'expiring'
      ? actionForm(`${base}/suspend`, csrf, 'Suspend', { extra: html`<label for="reason">Reason (kept in the event)</label><input id="reason" name="reason" maxlength="500">` })
      : s === 'suspended'
        ? actionForm(`${base}/resume`, csrf, 'Resume')
        : '';
  const rotate =
    key.kind === 'child' && (s === 'live' || s === 'expiring')
      ? actionForm(`${base}/rotate`, csrf, 'Rotate', {
          confirm: `Rotate ${key.key_prefix}?`,
          extra: html`<label for="overlap">Overlap (seconds the old key keeps working, 0 to ${MAX_OVERLAP_SECONDS})</label><input id="overlap" name="overlap_seconds" type="number" min="0" max="${MAX_OVERLAP_SECONDS}" step="1" value="0" required>`,
        })
      : '';
  return html`<div class="actions-list">${suspend ? html`<div>${suspend}</div>` : ''}${rotate ? html`<div>${rotate}</div>` : ''}
<div>${actionForm(`${base}/revoke`, csrf, 'Revoke', { danger: true, confirm: `Revoke ${key.key_prefix}?` })}${actionForm(`${base}/revoke-leaked`, csrf, 'Revoke as leaked', { danger: true, confirm: `Revoke ${key.key_prefix} as leaked?` })}</div></div>
<p class="hint">Holding a leaked plaintext instead? Report it on <a href="/console/leaks">Leaked tokens</a>: whatever key it names is revoked with reason "leaked".</p>`;
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
